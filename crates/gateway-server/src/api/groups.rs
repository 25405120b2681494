//! The group routes of the REST API: membership (join, leave, list), a user's groups and
//! disbanding. Each calls the hub's operation of the same name; refusals are JSON errors
//! (400 `invalid_target`, 409 `group_full` / `too_many_groups`, 503 `unavailable`).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiPath;
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::state::AppState;

/// The members of a group.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GroupMembers {
    /// The group.
    group_id: String,
    /// Members in all.
    total: usize,
    /// Their user ids, sorted.
    members: Vec<String>,
}

/// A user added to a group.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MemberAdded {
    /// The group.
    group_id: String,
    /// The user.
    user_id: String,
    /// Always true.
    member: bool,
    /// False when the user was a member already.
    added: bool,
}

/// A user removed from a group.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MemberRemoved {
    /// The group.
    group_id: String,
    /// The user.
    user_id: String,
    /// Always false.
    member: bool,
    /// False when the user was not a member.
    removed: bool,
}

/// A disbanded group.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GroupDisbanded {
    /// The group.
    group_id: String,
    /// The members it had, sorted.
    members: Vec<String>,
}

/// The groups of a user.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserGroups {
    /// The user.
    user_id: String,
    /// Groups in all.
    total: usize,
    /// Their ids, sorted.
    groups: Vec<String>,
}

/// The members of a group: every stored member (on every node), plus the users connected to
/// this node who joined it at connect.
#[utoipa::path(get, path = "/api/v1/groups/{group_id}/members",
    params(("group_id" = String, Path, description = "the group")),
    responses(
        (status = 200, description = "the members", body = GroupMembers),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
pub(super) async fn group_members(
    State(state): State<AppState>,
    ApiPath(group_id): ApiPath<String>,
) -> Result<Json<GroupMembers>, ApiError> {
    let members = state.hub.group_members(&group_id).await?;
    Ok(Json(GroupMembers {
        group_id,
        total: members.len(),
        members,
    }))
}

/// Add a user to a group (every device of the user, across reconnects, on every node).
/// 409 `group_full` or `too_many_groups` past `wsc.groups.max_group_size` or
/// `max_groups_per_user`.
#[utoipa::path(put, path = "/api/v1/groups/{group_id}/members/{user_id}",
    params(
        ("group_id" = String, Path, description = "the group"),
        ("user_id" = String, Path, description = "the user"),
    ),
    responses(
        (status = 200, description = "membership", body = MemberAdded),
        (status = 409, description = "a limit is reached", body = ErrorBody),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
pub(super) async fn join_group(
    State(state): State<AppState>,
    ApiPath((group_id, user_id)): ApiPath<(String, String)>,
) -> Result<Json<MemberAdded>, ApiError> {
    let added = state.hub.join_group(&group_id, &user_id).await?;
    Ok(Json(MemberAdded {
        group_id,
        user_id,
        member: true,
        added,
    }))
}

/// Remove a user from a group.
#[utoipa::path(delete, path = "/api/v1/groups/{group_id}/members/{user_id}",
    params(
        ("group_id" = String, Path, description = "the group"),
        ("user_id" = String, Path, description = "the user"),
    ),
    responses(
        (status = 200, description = "membership", body = MemberRemoved),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
pub(super) async fn leave_group(
    State(state): State<AppState>,
    ApiPath((group_id, user_id)): ApiPath<(String, String)>,
) -> Result<Json<MemberRemoved>, ApiError> {
    let removed = state.hub.leave_group(&group_id, &user_id).await?;
    Ok(Json(MemberRemoved {
        group_id,
        user_id,
        member: false,
        removed,
    }))
}

/// Disband a group: every membership ends (connections that joined it at connect keep
/// their binding until they close).
#[utoipa::path(delete, path = "/api/v1/groups/{group_id}",
    params(("group_id" = String, Path, description = "the group")),
    responses(
        (status = 200, description = "the former members", body = GroupDisbanded),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
pub(super) async fn disband_group(
    State(state): State<AppState>,
    ApiPath(group_id): ApiPath<String>,
) -> Result<Json<GroupDisbanded>, ApiError> {
    let members = state.hub.disband_group(&group_id).await?;
    Ok(Json(GroupDisbanded { group_id, members }))
}

/// The groups a user belongs to.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/groups",
    params(("user_id" = String, Path, description = "the user")),
    responses(
        (status = 200, description = "the user's groups", body = UserGroups),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
pub(super) async fn user_groups(
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<UserGroups>, ApiError> {
    let groups = state.hub.user_groups(&user_id).await?;
    Ok(Json(UserGroups {
        user_id,
        total: groups.len(),
        groups,
    }))
}

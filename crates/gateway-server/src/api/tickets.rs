//! The ticket routes of the REST API: open, read, transfer, close, the queue and agents'
//! workloads. Each calls the hub's operation; refusals are JSON errors (400
//! `invalid_target` / `invalid_body`, 404 `ticket_not_found`, 409 `ticket_exists`,
//! `ticket_closed`, `agent_full`, `agent_unavailable`, 503 `unavailable`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wsc_hub::{AgentLoad, NewTicket, Ticket};

use super::{ApiPath, Body, parse};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::state::AppState;

/// The body of `POST /api/v1/tickets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenTicket {
    /// The customer's user id.
    customer_id: String,
    /// The ticket's id (generated when absent).
    #[serde(default)]
    ticket_id: String,
    /// Served before the other queued tickets.
    #[serde(default)]
    vip: bool,
    /// Only agents of this department (a group of their connection) take it.
    #[serde(default)]
    department: String,
}

/// The body of `POST /api/v1/tickets/{ticket_id}/transfer`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferTicket {
    /// The agent who takes the ticket.
    agent_id: String,
}

/// The body of `POST /api/v1/tickets/{ticket_id}/close` (may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CloseTicket {
    /// Why (default `closed`).
    #[serde(default)]
    reason: String,
}

/// The queued tickets.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TicketQueue {
    /// Tickets in the queue.
    total: usize,
    /// In the order agents take them (VIP first, then oldest).
    tickets: Vec<Ticket>,
}

/// Every agent's workload.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Agents {
    /// By agent id.
    agents: Vec<AgentLoad>,
}

/// Open a ticket for a customer: assigned to the least-loaded available agent with room,
/// or queued.
#[utoipa::path(post, path = "/api/v1/tickets", request_body = OpenTicket,
    responses(
        (status = 200, description = "the ticket", body = Ticket),
        (status = 409, description = "a ticket with this id exists", body = ErrorBody),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
pub(super) async fn open_ticket(
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<Json<Ticket>, ApiError> {
    let body: OpenTicket = parse(&body)?;
    let ticket = NewTicket::new(body.customer_id)
        .with_id(body.ticket_id)
        .vip(body.vip)
        .with_department(body.department);
    Ok(Json(state.hub.open_ticket(ticket).await?))
}

/// A ticket (closed ones for an hour after they closed).
#[utoipa::path(get, path = "/api/v1/tickets/{ticket_id}",
    params(("ticket_id" = String, Path, description = "the ticket")),
    responses(
        (status = 200, description = "the ticket", body = Ticket),
        (status = 404, description = "no such ticket", body = ErrorBody),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
pub(super) async fn ticket(
    State(state): State<AppState>,
    ApiPath(ticket_id): ApiPath<String>,
) -> Result<Json<Ticket>, ApiError> {
    match state.hub.ticket(&ticket_id).await? {
        Some(ticket) => Ok(Json(ticket)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ticket_not_found",
            format!("ticket {ticket_id} not found"),
        )),
    }
}

/// Move an open ticket to another available agent with room.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/transfer", request_body = TransferTicket,
    params(("ticket_id" = String, Path, description = "the ticket")),
    responses(
        (status = 200, description = "the ticket", body = Ticket),
        (status = 409, description = "the agent is full or away, or the ticket is closed", body = ErrorBody),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
pub(super) async fn transfer_ticket(
    State(state): State<AppState>,
    ApiPath(ticket_id): ApiPath<String>,
    Body(body): Body,
) -> Result<Json<Ticket>, ApiError> {
    let body: TransferTicket = parse(&body)?;
    Ok(Json(
        state
            .hub
            .transfer_ticket(&ticket_id, &body.agent_id)
            .await?,
    ))
}

/// Close an open ticket.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/close", request_body = CloseTicket,
    params(("ticket_id" = String, Path, description = "the ticket")),
    responses(
        (status = 200, description = "the closed ticket", body = Ticket),
        (status = 409, description = "the ticket is closed already", body = ErrorBody),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
pub(super) async fn close_ticket(
    State(state): State<AppState>,
    ApiPath(ticket_id): ApiPath<String>,
    Body(body): Body,
) -> Result<Json<Ticket>, ApiError> {
    let body: CloseTicket = parse(&body)?;
    Ok(Json(
        state.hub.close_ticket(&ticket_id, &body.reason).await?,
    ))
}

/// The queued tickets, in the order agents take them.
#[utoipa::path(get, path = "/api/v1/tickets/queue",
    responses(
        (status = 200, description = "the queue", body = TicketQueue),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
pub(super) async fn ticket_queue(
    State(state): State<AppState>,
) -> Result<Json<TicketQueue>, ApiError> {
    let tickets = state.hub.ticket_queue().await?;
    Ok(Json(TicketQueue {
        total: tickets.len(),
        tickets,
    }))
}

/// Every agent's workload: tickets assigned, capacity, whether available.
#[utoipa::path(get, path = "/api/v1/agents",
    responses(
        (status = 200, description = "the agents", body = Agents),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
pub(super) async fn agents(State(state): State<AppState>) -> Result<Json<Agents>, ApiError> {
    Ok(Json(Agents {
        agents: state.hub.agent_workloads().await?,
    }))
}

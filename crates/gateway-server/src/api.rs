//! The API listener: health, readiness and the first REST routes.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use wsc_hub::{BroadcastOptions, DeliveryReport, HubMessage, HubStats};

use crate::error::ApiError;
use crate::server::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/users/{user_id}/messages", post(send_to_user))
        .route("/api/v1/broadcast", post(broadcast))
}

pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<AppState>) -> (axum::http::StatusCode, Json<Value>) {
    let running = state.hub.is_running();
    let status = if running {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if running { "ready" } else { "not_ready" },
        "checks": {"hub": if running { "ok" } else { "stopped" }},
    });
    (status, Json(body))
}

async fn stats(State(state): State<AppState>) -> Json<HubStats> {
    Json(state.hub.stats())
}

async fn send_to_user(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Json(msg): Json<HubMessage>,
) -> Result<Json<DeliveryReport>, ApiError> {
    Ok(Json(state.hub.send_to_user(&user_id, msg).await?))
}

async fn broadcast(
    State(state): State<AppState>,
    Json(msg): Json<HubMessage>,
) -> Result<Json<DeliveryReport>, ApiError> {
    Ok(Json(
        state
            .hub
            .broadcast(msg, BroadcastOptions::default())
            .await?,
    ))
}

//! The OpenAPI 3.1 document of the server API, generated with `utoipa` from the handlers
//! (`#[utoipa::path]` in `api.rs`) and the types they read and return, and served at
//! `/api/v1/openapi.json`. The routes are registered through `utoipa-axum`, which documents
//! each route as it adds it, so the document cannot list a route the router lacks or miss
//! one it has.
//!
//! This file holds the document's frame (title, security) and the types that only describe
//! a request or an answer shape; the handlers' own response types live beside them.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use wsc_hub::{AckReport, DeliveryReport, HubMessage};

use crate::api::{CertificateExpiry, Health, Ready};

/// The frame every generated path is added to.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wsc-gateway server API",
        description = "Push messages to WebSocket clients and query presence. When API keys are \
                       configured, send `Authorization: Bearer <key>`. Every error is JSON \
                       `{\"error\", \"message\"}`."
    ),
    modifiers(&ApiKeys),
    security(("apiKey" = [])),
    // The schemas of the routes added at their configured paths (health, readiness); the
    // routes added through `routes!` bring their own.
    components(schemas(ErrorBody, Health, Ready, CertificateExpiry))
)]
pub(crate) struct ApiDoc;

/// Declares the bearer API key scheme the `security` requirement names.
struct ApiKeys;

impl Modify for ApiKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every error: a stable machine code and a human-readable reason.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// Stable machine code (`invalid_body`, `not_found`, ...).
    pub(crate) error: String,
    /// Human-readable reason.
    pub(crate) message: String,
}

/// `ack` in a send body: wait for the client's acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AckRequest {
    /// How long each attempt waits, 1..300000 ms (default `wsc.ack.timeout`).
    #[schema(minimum = 1, maximum = 300000)]
    pub(crate) timeout_ms: Option<u64>,
    /// Resends after the first attempt (default `wsc.ack.max_retries`); the whole wait,
    /// `timeout_ms` × (`retries` + 1), must be at most 300000 ms.
    pub(crate) retries: Option<u32>,
}

/// The body of a user, ticket, group or connection send: a message (the fields of
/// docs/protocol.md) and, optionally, `ack`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SendRequest {
    #[serde(flatten)]
    pub(crate) message: HubMessage,
    /// Wait for the client's ack; the answer is then an `AckReport`.
    pub(crate) ack: Option<AckRequest>,
}

/// The body of a broadcast: a message (`app_id` and `namespace` scope it) and, optionally,
/// a user who does not get it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BroadcastRequest {
    #[serde(flatten)]
    pub(crate) message: HubMessage,
    /// A user whose connections are skipped.
    pub(crate) exclude_user: Option<String>,
}

/// What a send answers: the delivery report, or with `ack` the acknowledgement report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum SendReply {
    /// A send without `ack`.
    Delivered(DeliveryReport),
    /// A send with `ack`.
    Acknowledged(AckReport),
}

//! JSON error responses: `{"error": "<code>", "message": "<human text>"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An HTTP error with a stable machine code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

/// The error code of a response, kept as a response extension so metrics can label it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorCode(pub(crate) &'static str);

/// The error message of a response, kept as a response extension so the refusal log can
/// say why without parsing the body.
#[derive(Debug, Clone)]
pub(crate) struct ErrorMessage(pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code, "message": self.message});
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        response.extensions_mut().insert(ErrorMessage(self.message));
        response
    }
}

impl From<wsc_hub::SendError> for ApiError {
    fn from(e: wsc_hub::SendError) -> Self {
        let status = match e {
            wsc_hub::SendError::NotRunning | wsc_hub::SendError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            wsc_hub::SendError::InvalidTarget(_) | wsc_hub::SendError::DuplicateMessageId(_) => {
                StatusCode::BAD_REQUEST
            }
            wsc_hub::SendError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            wsc_hub::SendError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<wsc_hub::InvalidId> for ApiError {
    fn from(e: wsc_hub::InvalidId) -> Self {
        ApiError::from(wsc_hub::SendError::from(e))
    }
}

impl From<wsc_hub::GroupError> for ApiError {
    fn from(e: wsc_hub::GroupError) -> Self {
        let status = match e {
            wsc_hub::GroupError::InvalidId(_) => StatusCode::BAD_REQUEST,
            wsc_hub::GroupError::GroupFull { .. } | wsc_hub::GroupError::TooManyGroups { .. } => {
                StatusCode::CONFLICT
            }
            wsc_hub::GroupError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<wsc_hub::TicketError> for ApiError {
    fn from(e: wsc_hub::TicketError) -> Self {
        use wsc_hub::TicketError as E;
        let status = match e {
            E::InvalidId(_) => StatusCode::BAD_REQUEST,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::AlreadyExists(_) | E::Closed(_) | E::AgentUnavailable(_) | E::AgentFull { .. } => {
                StatusCode::CONFLICT
            }
            E::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

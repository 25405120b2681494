//! The WebSocket close frame (code and reason) of each way a connection ends or is refused.
//!
//! This mapping is the WebSocket transport's: the core only says *why* a connection ends
//! ([`DisconnectReason`], [`RegisterError`]); a WebSocket adapter turns that into a close
//! frame with these codes, and the SSE transport names them in its last event. It is compiled without the
//! `tungstenite` feature because other WebSocket adapters (axum's, in `gateway-server`)
//! and disconnect callbacks use the same codes.

use crate::connection::DisconnectReason;
use crate::report::RegisterError;

/// Close reasons are limited to 123 bytes by the protocol.
pub(crate) const MAX_REASON: usize = 120;

impl DisconnectReason {
    /// The WebSocket close code the server sends for this reason.
    pub fn close_code(&self) -> u16 {
        match self {
            DisconnectReason::ClientClosed { code } => *code,
            DisconnectReason::ConnectionLost { .. } => 1006,
            DisconnectReason::Timeout | DisconnectReason::Replaced => 1000,
            DisconnectReason::Kicked { .. }
            | DisconnectReason::LoginElsewhere
            | DisconnectReason::PolicyViolation { .. } => 1008,
            DisconnectReason::SlowConsumer => 1013,
            DisconnectReason::MessageTooLarge => 1009,
            DisconnectReason::InvalidPayload => 1007,
            DisconnectReason::ServerShutdown => 1001,
        }
    }

    /// The human-readable close reason (kept under the 123-byte close-frame limit).
    pub fn close_text(&self) -> String {
        let text = match self {
            DisconnectReason::ClientClosed { .. } => "closed by client".to_owned(),
            DisconnectReason::ConnectionLost { error } => format!("connection lost: {error}"),
            DisconnectReason::Timeout => "client timeout: nothing received in time".to_owned(),
            DisconnectReason::Kicked { reason } => format!("kicked: {reason}"),
            DisconnectReason::LoginElsewhere => "logged in elsewhere".to_owned(),
            DisconnectReason::Replaced => "replaced by a newer connection".to_owned(),
            DisconnectReason::SlowConsumer => "slow consumer: try again later".to_owned(),
            DisconnectReason::MessageTooLarge => "message too large".to_owned(),
            DisconnectReason::InvalidPayload => "text frame is not valid UTF-8".to_owned(),
            DisconnectReason::PolicyViolation { detail } => detail.clone(),
            DisconnectReason::ServerShutdown => "server shutting down".to_owned(),
        };
        truncate_utf8(text, MAX_REASON)
    }
}

impl RegisterError {
    /// The close code used when the refusal has to be told over an open WebSocket.
    pub fn close_code(&self) -> u16 {
        match self {
            RegisterError::NotRunning => 1001,
            RegisterError::NodeFull { .. } => 1013,
            _ => 1008,
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub(crate) fn truncate_utf8(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

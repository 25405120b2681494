//! The `wsc.security` section: inbound limits, handshake checks and connection tokens
//! (the algorithm names and the kind of key each needs).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wsc_hub::HubConfig;

use crate::{duration, size};

/// Inbound limits and handshake checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SecurityConfig {
    /// Whether a signed token is required at the upgrade.
    pub enable_auth: bool,
    /// Token verification.
    pub token: TokenConfig,
    /// Whether the inbound rate limits apply.
    pub enable_rate_limit: bool,
    /// Inbound frames per connection per second.
    pub max_messages_per_second: u32,
    /// Inbound bytes per connection per second.
    #[serde(with = "size")]
    pub max_bytes_per_second: usize,
    /// Largest inbound frame (larger frames close the connection with 1009).
    #[serde(with = "size")]
    pub max_message_size: usize,
    /// Largest serialized outbound message; larger sends are refused (413,
    /// `INVALID_ARGUMENT`, `SendError::TooLarge`).
    #[serde(with = "size")]
    pub max_outbound_message_size: usize,
    /// Ticket ids one connection may bind at connect (0 = unlimited).
    pub max_ticket_ids: usize,
    /// Group ids one connection may join at connect (0 = unlimited).
    pub max_group_ids: usize,
    /// User types allowed to connect (empty = any).
    pub allowed_user_types: Vec<String>,
    /// Client IPs or CIDR ranges allowed to connect (empty = any).
    pub allowed_ips: Vec<String>,
    /// Client IPs or CIDR ranges refused.
    pub blocked_ips: Vec<String>,
    /// Handshakes accepted per client IP per second (0 = unlimited).
    pub max_handshakes_per_ip_per_second: u32,
    /// How long a client may take to complete the upgrade.
    #[serde(with = "duration")]
    pub handshake_timeout: Duration,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        let hub = HubConfig::default();
        SecurityConfig {
            enable_auth: false,
            token: TokenConfig::default(),
            enable_rate_limit: true,
            max_messages_per_second: hub.max_inbound_per_second,
            max_bytes_per_second: hub.max_inbound_bytes_per_second,
            max_message_size: hub.limits.max_message_size,
            max_outbound_message_size: hub.max_outbound_message_size,
            max_ticket_ids: hub.max_ticket_ids,
            max_group_ids: hub.max_group_ids,
            allowed_user_types: Vec::new(),
            allowed_ips: Vec::new(),
            blocked_ips: Vec::new(),
            max_handshakes_per_ip_per_second: 20,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Token verification (JWT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct TokenConfig {
    /// The one accepted algorithm: `HS256`, `HS384`, `HS512`, `RS256`, `RS384`, `RS512`,
    /// `PS256`, `PS384`, `PS512`, `ES256`, `ES384` or `EdDSA`.
    pub algorithm: TokenAlgorithm,
    /// Shared secret of the `HS*` algorithms. Secret: masked when printed.
    pub secret: String,
    /// Public key (PEM) of the `RS*`, `PS*`, `ES*` and `EdDSA` algorithms.
    pub public_key: String,
    /// Required `iss` claim (empty = not checked).
    pub issuer: String,
    /// Required `aud` claim (empty = not checked).
    pub audience: String,
    /// Query parameter carrying the token (the `Authorization: Bearer` header works too).
    pub query_param: String,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            algorithm: TokenAlgorithm::Hs256,
            secret: String::new(),
            public_key: String::new(),
            issuer: String::new(),
            audience: String::new(),
            query_param: "token".to_owned(),
        }
    }
}

/// `wsc.security.token.algorithm`: every JWT algorithm `jsonwebtoken` verifies. Exactly one
/// is accepted at a time; a token signed with another one is refused.
///
/// Names are read case-insensitively (`hs512` is `HS512`) and written in their JOSE form.
/// An unknown name is an error that lists [`TokenAlgorithm::NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenAlgorithm {
    /// HMAC with SHA-256 (shared `secret`).
    Hs256,
    /// HMAC with SHA-384 (shared `secret`).
    Hs384,
    /// HMAC with SHA-512 (shared `secret`).
    Hs512,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA `public_key`, PEM).
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384 (RSA `public_key`, PEM).
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512 (RSA `public_key`, PEM).
    Rs512,
    /// RSASSA-PSS with SHA-256 (RSA `public_key`, PEM).
    Ps256,
    /// RSASSA-PSS with SHA-384 (RSA `public_key`, PEM).
    Ps384,
    /// RSASSA-PSS with SHA-512 (RSA `public_key`, PEM).
    Ps512,
    /// ECDSA on P-256 with SHA-256 (EC `public_key`, PEM).
    Es256,
    /// ECDSA on P-384 with SHA-384 (EC `public_key`, PEM).
    Es384,
    /// EdDSA with Ed25519 (Ed25519 `public_key`, PEM).
    EdDsa,
}

/// Which kind of key a [`TokenAlgorithm`] verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKeyKind {
    /// A shared secret (`wsc.security.token.secret`).
    Secret,
    /// An RSA public key in PEM (`wsc.security.token.public_key`).
    Rsa,
    /// An elliptic-curve public key in PEM.
    Ec,
    /// An Ed25519 public key in PEM.
    Ed,
}

impl TokenAlgorithm {
    /// Every algorithm, in the order of [`TokenAlgorithm::NAMES`].
    pub const ALL: [TokenAlgorithm; 12] = [
        TokenAlgorithm::Hs256,
        TokenAlgorithm::Hs384,
        TokenAlgorithm::Hs512,
        TokenAlgorithm::Rs256,
        TokenAlgorithm::Rs384,
        TokenAlgorithm::Rs512,
        TokenAlgorithm::Ps256,
        TokenAlgorithm::Ps384,
        TokenAlgorithm::Ps512,
        TokenAlgorithm::Es256,
        TokenAlgorithm::Es384,
        TokenAlgorithm::EdDsa,
    ];

    /// The accepted names, as they appear in a token's `alg` header.
    pub const NAMES: [&'static str; 12] = [
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
        "ES384", "EdDSA",
    ];

    /// The JOSE name (`HS256`, ..., `EdDSA`), as in a token's `alg` header.
    pub fn name(self) -> &'static str {
        let index = TokenAlgorithm::ALL
            .iter()
            .position(|a| *a == self)
            .unwrap_or_default();
        TokenAlgorithm::NAMES[index]
    }

    /// The kind of key this algorithm verifies with.
    pub fn key_kind(self) -> TokenKeyKind {
        match self {
            TokenAlgorithm::Hs256 | TokenAlgorithm::Hs384 | TokenAlgorithm::Hs512 => {
                TokenKeyKind::Secret
            }
            TokenAlgorithm::Rs256
            | TokenAlgorithm::Rs384
            | TokenAlgorithm::Rs512
            | TokenAlgorithm::Ps256
            | TokenAlgorithm::Ps384
            | TokenAlgorithm::Ps512 => TokenKeyKind::Rsa,
            TokenAlgorithm::Es256 | TokenAlgorithm::Es384 => TokenKeyKind::Ec,
            TokenAlgorithm::EdDsa => TokenKeyKind::Ed,
        }
    }
}

impl std::fmt::Display for TokenAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An algorithm name that is not one of [`TokenAlgorithm::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown token algorithm `{0}`; accepted: {names}", names = TokenAlgorithm::NAMES.join(", "))]
pub struct UnknownAlgorithm(pub String);

impl std::str::FromStr for TokenAlgorithm {
    type Err = UnknownAlgorithm;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        TokenAlgorithm::NAMES
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text.trim()))
            .map(|index| TokenAlgorithm::ALL[index])
            .ok_or_else(|| UnknownAlgorithm(text.to_owned()))
    }
}

impl Serialize for TokenAlgorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TokenAlgorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

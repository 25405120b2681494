//! Signed connection tokens (JWT) checked at the upgrade when `wsc.security.enable_auth` is
//! on. One algorithm is configured (`HS256`/`HS384`/`HS512` with a secret, `RS*`/`PS*` with an
//! RSA public key, `ES256`/`ES384` with an EC public key, `EdDSA` with an Ed25519 public key,
//! all keys in PEM) and tokens of any other algorithm are refused.
//!
//! The token comes from `?token=` (the name is `wsc.security.token.query_param`) or
//! `Authorization: Bearer <token>`. Its claims are the identity: `sub` or `uid` (or
//! `user_id`) is the user, and `utp`/`user_type`, `did`/`device_id`, `aid`/`app_id`,
//! `tid`/`namespace`, `gid`/`group_id` (comma list or array) and `ticket_id` (the same) fill
//! the rest, as in go-wsc. `exp` is required; `nbf` is honoured when present (both with
//! [`LEEWAY_SECS`] of clock skew); `iss` and `aud` are checked when configured.

use axum::http::{HeaderMap, Uri, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use wsc_config::{TokenAlgorithm, TokenConfig, TokenKeyKind};
use wsc_hub::{DEFAULT_USER_TYPE, Identity};

/// Clock skew tolerated on `exp` and `nbf`, in seconds (jsonwebtoken's default, stated here
/// so that the documented value is the one in force).
pub(crate) const LEEWAY_SECS: u64 = 60;

/// The `jsonwebtoken` algorithm of a configured one.
pub(crate) fn jwt_algorithm(algorithm: TokenAlgorithm) -> Algorithm {
    match algorithm {
        TokenAlgorithm::Hs256 => Algorithm::HS256,
        TokenAlgorithm::Hs384 => Algorithm::HS384,
        TokenAlgorithm::Hs512 => Algorithm::HS512,
        TokenAlgorithm::Rs256 => Algorithm::RS256,
        TokenAlgorithm::Rs384 => Algorithm::RS384,
        TokenAlgorithm::Rs512 => Algorithm::RS512,
        TokenAlgorithm::Ps256 => Algorithm::PS256,
        TokenAlgorithm::Ps384 => Algorithm::PS384,
        TokenAlgorithm::Ps512 => Algorithm::PS512,
        TokenAlgorithm::Es256 => Algorithm::ES256,
        TokenAlgorithm::Es384 => Algorithm::ES384,
        TokenAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

/// Why a token was refused: a stable code and a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl TokenError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        TokenError {
            code,
            message: message.into(),
        }
    }
}

/// Verifies connection tokens with the configured key.
pub(crate) struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    query_param: String,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithm", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Builds the verifier; an unusable key is an error at start, not at the first client.
    pub(crate) fn from_config(config: &TokenConfig) -> Result<Self, String> {
        let algorithm = jwt_algorithm(config.algorithm);
        let pem = config.public_key.as_bytes();
        let not_pem = |kind: &'static str| {
            move |e: jsonwebtoken::errors::Error| {
                format!(
                    "wsc.security.token.public_key is not an {kind} public key in PEM, as {} \
                     needs: {e}",
                    config.algorithm
                )
            }
        };
        let key = match config.algorithm.key_kind() {
            TokenKeyKind::Secret => {
                if config.secret.is_empty() {
                    return Err(format!(
                        "{} needs wsc.security.token.secret",
                        config.algorithm
                    ));
                }
                DecodingKey::from_secret(config.secret.as_bytes())
            }
            TokenKeyKind::Rsa => DecodingKey::from_rsa_pem(pem).map_err(not_pem("RSA"))?,
            TokenKeyKind::Ec => DecodingKey::from_ec_pem(pem).map_err(not_pem("EC"))?,
            _ => DecodingKey::from_ed_pem(pem).map_err(not_pem("Ed25519"))?,
        };
        // The one configured algorithm: a token whose header names another is refused, so
        // a public key can never be used as an HMAC secret.
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        if config.issuer.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&[&config.issuer]);
        }
        if config.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&config.audience]);
        }
        Ok(TokenVerifier {
            key,
            validation,
            query_param: config.query_param.clone(),
        })
    }

    /// The identity the request's token proves. Identity fields that only describe the
    /// connection (`client_id`, `device_id`, `last_seq`) may still come from the query.
    pub(crate) fn identity(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        from_request: &Identity,
    ) -> Result<Identity, TokenError> {
        let token = self.token(uri, headers).ok_or_else(|| {
            TokenError::new(
                "missing_token",
                format!(
                    "a token is required: `?{}=<jwt>` or `Authorization: Bearer <jwt>`",
                    self.query_param
                ),
            )
        })?;
        self.verify(&token, from_request)
    }

    /// The identity a token proves; the connection's own fields come from `from_request`.
    pub(crate) fn verify(
        &self,
        token: &str,
        from_request: &Identity,
    ) -> Result<Identity, TokenError> {
        let claims = decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| {
                let reason = match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::InvalidSignature => "the token signature is not valid",
                    ErrorKind::InvalidAudience => "the token is for another audience",
                    ErrorKind::InvalidIssuer => "the token has another issuer",
                    ErrorKind::ImmatureSignature => "the token is not valid yet",
                    ErrorKind::MissingRequiredClaim(_) => "the token has no `exp` claim",
                    ErrorKind::InvalidAlgorithm => "the token uses another algorithm",
                    _ => "the token is malformed",
                };
                TokenError::new("invalid_token", reason)
            })?
            .claims;
        let user_id = claims
            .uid
            .or(claims.user_id)
            .or(claims.sub)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| TokenError::new("invalid_token", "the token names no user (sub/uid)"))?;
        let mut identity = Identity::new(user_id)
            .with_user_type(
                claims
                    .utp
                    .or(claims.user_type)
                    .unwrap_or_else(|| DEFAULT_USER_TYPE.to_owned()),
            )
            .with_scope(
                claims.aid.or(claims.app_id).unwrap_or_default(),
                claims.tid.or(claims.namespace).unwrap_or_default(),
            )
            .with_groups(
                claims
                    .gid
                    .or(claims.group_id)
                    .map(List::items)
                    .unwrap_or_default(),
            )
            .with_tickets(claims.ticket_id.map(List::items).unwrap_or_default())
            .with_client_id(from_request.client_id.clone())
            .with_device_id(
                claims
                    .did
                    .or(claims.device_id)
                    .unwrap_or_else(|| from_request.device_id.clone()),
            );
        identity.metadata = from_request.metadata.clone();
        identity.last_seq = from_request.last_seq;
        identity
            .validate()
            .map_err(|e| TokenError::new("invalid_token", e.to_string()))?;
        Ok(identity)
    }

    fn token(&self, uri: &Uri, headers: &HeaderMap) -> Option<String> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let from_header = crate::api_key::bearer(authorization)
            .ok()
            .flatten()
            .map(str::to_owned);
        from_header.or_else(|| {
            uri.query()?.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == self.query_param && !v.is_empty()).then(|| v.to_owned())
            })
        })
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    uid: Option<String>,
    user_id: Option<String>,
    utp: Option<String>,
    user_type: Option<String>,
    did: Option<String>,
    device_id: Option<String>,
    aid: Option<String>,
    app_id: Option<String>,
    tid: Option<String>,
    namespace: Option<String>,
    gid: Option<List>,
    group_id: Option<List>,
    ticket_id: Option<List>,
}

/// A claim written as a comma list or a JSON array.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum List {
    Text(String),
    Items(Vec<String>),
}

impl List {
    fn items(self) -> Vec<String> {
        match self {
            List::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            List::Items(items) => items,
        }
    }
}

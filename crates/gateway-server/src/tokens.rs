//! Making and checking connection tokens outside a connection: what `gateway-server
//! gentoken` and `checktoken` do, with the same configuration (`wsc.security.token`) and the
//! same verifier as the WebSocket upgrade.

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Map, Value};
use wsc_config::{TokenConfig, TokenKeyKind};
use wsc_hub::Identity;

use crate::auth::{TokenVerifier, jwt_algorithm};

/// What a new token says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRequest {
    /// The user (`sub`).
    pub user_id: String,
    /// How long the token is valid (`exp` = now + ttl).
    pub ttl: Duration,
    /// More claims (`utp`, `aid`, `tid`, `gid`, `ticket_id`, or your own), each a JSON value.
    pub claims: Map<String, Value>,
}

impl TokenRequest {
    /// A token for `user_id`, valid for `ttl`, with no other claims.
    pub fn new(user_id: impl Into<String>, ttl: Duration) -> Self {
        TokenRequest {
            user_id: user_id.into(),
            ttl,
            claims: Map::new(),
        }
    }
}

/// Why a token could not be made or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenToolError {
    /// The configuration or the key cannot sign or verify tokens.
    #[error("{0}")]
    Key(String),
    /// The token was refused; the text says why, as the upgrade would.
    #[error("{code}: {message}")]
    Refused {
        /// The refusal code the upgrade would answer with (`invalid_token`, ...).
        code: &'static str,
        /// Why.
        message: String,
    },
}

/// Signs a connection token with the configured algorithm: the configured secret for
/// `HS*`, `private_key_pem` (the counterpart of `wsc.security.token.public_key`) for the
/// others. `iss` and `aud` are the configured ones when set.
pub fn sign(
    config: &TokenConfig,
    private_key_pem: Option<&str>,
    request: &TokenRequest,
) -> Result<String, TokenToolError> {
    let key = match (config.algorithm.key_kind(), private_key_pem) {
        (TokenKeyKind::Secret, _) if config.secret.is_empty() => {
            return Err(TokenToolError::Key(format!(
                "{} needs wsc.security.token.secret",
                config.algorithm
            )));
        }
        (TokenKeyKind::Secret, _) => EncodingKey::from_secret(config.secret.as_bytes()),
        (_, None) => {
            return Err(TokenToolError::Key(format!(
                "{} signs with a private key: pass it with --key <PEM file>",
                config.algorithm
            )));
        }
        (TokenKeyKind::Rsa, Some(pem)) => EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| TokenToolError::Key(format!("not an RSA private key in PEM: {e}")))?,
        (TokenKeyKind::Ec, Some(pem)) => EncodingKey::from_ec_pem(pem.as_bytes())
            .map_err(|e| TokenToolError::Key(format!("not an EC private key in PEM: {e}")))?,
        (_, Some(pem)) => EncodingKey::from_ed_pem(pem.as_bytes())
            .map_err(|e| TokenToolError::Key(format!("not an Ed25519 private key in PEM: {e}")))?,
    };
    let now = u64::try_from(crate::tls::unix_now()).unwrap_or_default();
    let mut claims = request.claims.clone();
    claims.insert("sub".to_owned(), Value::from(request.user_id.clone()));
    claims.insert("iat".to_owned(), Value::from(now));
    claims.insert(
        "exp".to_owned(),
        Value::from(now.saturating_add(request.ttl.as_secs())),
    );
    if !config.issuer.is_empty() {
        claims.insert("iss".to_owned(), Value::from(config.issuer.clone()));
    }
    if !config.audience.is_empty() {
        claims.insert("aud".to_owned(), Value::from(config.audience.clone()));
    }
    encode(&Header::new(jwt_algorithm(config.algorithm)), &claims, &key)
        .map_err(|e| TokenToolError::Key(format!("signing failed: {e}")))
}

/// Checks a token as the upgrade would and returns the identity it proves.
pub fn verify(config: &TokenConfig, token: &str) -> Result<Identity, TokenToolError> {
    let verifier = TokenVerifier::from_config(config).map_err(TokenToolError::Key)?;
    verifier
        .verify(token, &Identity::default())
        .map_err(|e| TokenToolError::Refused {
            code: e.code,
            message: e.message,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs256(secret: &str) -> TokenConfig {
        let mut config = TokenConfig::default();
        config.secret = secret.to_owned();
        config
    }

    #[test]
    fn a_signed_token_verifies_to_its_identity() {
        let config = hs256("s3cret");
        let mut request = TokenRequest::new("alice", Duration::from_secs(60));
        request
            .claims
            .insert("utp".to_owned(), Value::from("agent"));
        request
            .claims
            .insert("gid".to_owned(), Value::from("g1,g2"));
        let token = sign(&config, None, &request).unwrap();
        let identity = verify(&config, &token).unwrap();
        assert_eq!(identity.user_id, "alice");
        assert_eq!(identity.user_type, "agent");
        assert_eq!(identity.group_ids, ["g1", "g2"]);
    }

    #[test]
    fn another_secret_or_no_secret_is_refused() {
        let token = sign(
            &hs256("one"),
            None,
            &TokenRequest::new("bob", Duration::from_secs(60)),
        )
        .unwrap();
        let refused = verify(&hs256("two"), &token).unwrap_err();
        assert!(
            matches!(refused, TokenToolError::Refused { code: "invalid_token", ref message } if message.contains("signature")),
            "{refused}"
        );
        assert!(matches!(
            sign(
                &hs256(""),
                None,
                &TokenRequest::new("bob", Duration::from_secs(1))
            ),
            Err(TokenToolError::Key(_))
        ));
    }
}

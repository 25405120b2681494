//! API keys: reading `Authorization: Bearer <key>` and checking it against `api.keys`, for
//! the REST API, the gRPC API and (the bearer part) signed connection tokens.

use axum::http::StatusCode;

use crate::error::ApiError;

/// The key of an `Authorization: Bearer <key>` value (the scheme is case-insensitive).
/// `Err(())` when a header is present but is not a bearer token.
pub(crate) fn bearer(value: Option<&str>) -> Result<Option<&str>, ()> {
    let Some(value) = value else { return Ok(None) };
    match value.split_once(' ') {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() => {
            Ok(Some(key.trim()))
        }
        _ => Err(()),
    }
}

/// Checks an API key against the configured ones; `Ok` when none are configured.
pub(crate) fn check_api_key(keys: &[String], authorization: Option<&str>) -> Result<(), ApiError> {
    if keys.is_empty() {
        return Ok(());
    }
    match bearer(authorization) {
        Ok(Some(key)) if keys.iter().any(|k| same(k, key)) => Ok(()),
        Ok(None) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "send the API key as `Authorization: Bearer <key>`",
        )),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "the API key is not valid (expected `Authorization: Bearer <key>`)",
        )),
    }
}

/// Compares in constant time (`subtle`), so the time taken does not reveal how much of a
/// key matched. Only the length may show, and keys are not secret in length.
pub(crate) fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

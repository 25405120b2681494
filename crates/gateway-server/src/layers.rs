//! The `tower-http` layers around the API listener: a request id on every request and
//! response, a trace span per request, a panic in a handler turned into a JSON 500 (the
//! server goes on), bounded request times, and JSON bodies for the errors the layers produce
//! themselves.

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;

/// How long an API request may take. Sends are bounded by their own ack wait (see
/// [`SEND_TIMEOUT`]); everything else answers at once or within the Redis timeout.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a send may take: the longest ack wait the API accepts
/// ([`crate::ops::MAX_ACK_WAIT_MS`]) and a margin.
pub(crate) const SEND_TIMEOUT: Duration =
    Duration::from_millis(crate::ops::MAX_ACK_WAIT_MS + 30_000);

/// The request id header, set when the client sent none and echoed on the response.
const REQUEST_ID: &str = "x-request-id";

/// Wraps the whole API router.
pub(crate) fn around<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(span))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(axum::middleware::map_response(json_error_bodies)),
    )
}

/// Bounds the routes of `router` to `limit`; an answer that takes longer is a 408.
pub(crate) fn timeout<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    limit: Duration,
) -> Router<S> {
    router.route_layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limit,
    ))
}

fn span(request: &Request<Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "api",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    );
    #[cfg(feature = "otlp")]
    crate::telemetry::continue_trace(&span, request.headers());
    span
}

/// A handler panicked: the client gets a JSON 500, the panic is logged, and the server
/// (and every other request) goes on.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!(panic = detail, "an API handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the server failed to handle the request",
    )
    .into_response()
}

/// An error response without a body (a layer's own: a timeout) gets the JSON body every
/// API error has.
async fn json_error_bodies(response: Response) -> Response {
    let status = response.status();
    let bare = response.headers().get(header::CONTENT_TYPE).is_none();
    if !(status.is_client_error() || status.is_server_error()) || !bare {
        return response;
    }
    let (code, message) = match status {
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long".to_owned()),
        other => (
            "http_error",
            other
                .canonical_reason()
                .unwrap_or("request failed")
                .to_owned(),
        ),
    };
    let request_id = response.headers().get(REQUEST_ID).cloned();
    let mut json = ApiError::new(status, code, message).into_response();
    if let Some(id) = request_id {
        json.headers_mut().insert(REQUEST_ID, id);
    }
    json
}

/// The request id of a response, for tests and logs.
#[cfg(test)]
fn request_id(response: &Response) -> Option<&axum::http::HeaderValue> {
    response.headers().get(REQUEST_ID)
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        let slow = timeout(
            Router::new().route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            ),
            Duration::from_secs(1),
        );
        around(
            Router::new()
                .route("/fine", get(|| async { "fine" }))
                .route(
                    "/boom",
                    get(|| async {
                        if true {
                            panic!("handler bug");
                        }
                        "unreachable"
                    }),
                )
                .merge(slow),
        )
    }

    async fn call(app: Router, path: &str, id: Option<&str>) -> (Response, serde_json::Value) {
        let mut request = Request::get(path);
        if let Some(id) = id {
            request = request.header(REQUEST_ID, id);
        }
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (Response::from_parts(parts, Body::empty()), json)
    }

    #[tokio::test]
    async fn every_response_carries_a_request_id_and_a_given_one_is_kept() {
        let (response, _) = call(app(), "/fine", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let generated = request_id(&response).expect("a generated id").clone();
        assert_eq!(generated.len(), 36, "a UUID: {generated:?}");
        let (response, _) = call(app(), "/fine", Some("abc-123")).await;
        assert_eq!(request_id(&response).unwrap(), "abc-123");
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_json_500_and_the_router_goes_on() {
        let app = app();
        let (response, json) = call(app.clone(), "/boom", Some("p-1")).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(json["error"], "internal_error");
        assert_eq!(request_id(&response).unwrap(), "p-1");
        let (response, _) = call(app, "/fine", None).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_over_its_time_is_a_json_408() {
        let (response, json) = call(app(), "/slow", Some("t-1")).await;
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(json["error"], "timeout");
        assert_eq!(request_id(&response).unwrap(), "t-1");
    }
}

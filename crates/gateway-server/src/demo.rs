//! The demo page (`gateway-server demo`, `cargo xtask demo`): a customer-service desk at
//! `/` on the public listener, with the browser client at `/wsc.js` (and its types at
//! `/wsc.d.ts`). The files are compiled into the binary, so the demo needs nothing on disk.
//! The page calls the REST API on its own origin, so the API must share the public port
//! (`http.port` = `wsc.node_port`, as `gateway-server demo` sets it).

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

const INDEX: &str = include_str!("../demo/index.html");
const DESK_JS: &str = include_str!("../demo/desk.js");
const DESK_CSS: &str = include_str!("../demo/desk.css");
const CLIENT_JS: &str = include_str!("../../../clients/browser/wsc.js");
const CLIENT_TYPES: &str = include_str!("../../../clients/browser/wsc.d.ts");

/// The page's routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/demo/desk.js",
            get(|| async { asset(DESK_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/demo/desk.css",
            get(|| async { asset(DESK_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/wsc.js",
            get(|| async { asset(CLIENT_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/wsc.d.ts",
            get(|| async { asset(CLIENT_TYPES, "application/typescript; charset=utf-8") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The page changes with the binary; a browser must not keep an old copy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

//! Feature `otlp`: an API request's span continues the W3C trace context the caller sent
//! (`traceparent`), and spans reach the OpenTelemetry exporter (here an in-memory one; the
//! binary's is OTLP).

#![cfg(feature = "otlp")]

mod support;

use gateway_server::telemetry::Telemetry;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use support::*;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "current_thread")]
async fn api_spans_continue_the_callers_trace_and_are_exported() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let telemetry = Telemetry::with_provider(provider);
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    // One thread: the server's tasks run here, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = start(local_config()).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, _, _) = http_raw(
        server.api_addr(),
        "GET",
        "/api/v1/stats",
        &[("traceparent", parent)],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = http_raw(server.api_addr(), "GET", "/api/v1/stats", &[], None).await;
    assert_eq!(status, 200);
    server.stop(WAIT).await;

    let spans = exporter.get_finished_spans().unwrap();
    let api: Vec<_> = spans.iter().filter(|s| s.name == "api").collect();
    assert_eq!(api.len(), 2, "one span per request: {spans:?}");
    let traced = api
        .iter()
        .find(|s| {
            s.span_context.trace_id()
                == TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        })
        .expect("the span of the request with traceparent continues its trace");
    assert_eq!(
        traced.parent_span_id,
        SpanId::from_hex("00f067aa0ba902b7").unwrap()
    );
    let fresh = api
        .iter()
        .find(|s| s.span_context.span_id() != traced.span_context.span_id())
        .unwrap();
    assert_ne!(
        fresh.span_context.trace_id(),
        traced.span_context.trace_id()
    );
    assert!(
        fresh.span_context.is_valid(),
        "a request without context starts a trace"
    );
    telemetry.shutdown();
}

//! Distributed tracing (feature `otlp`): spans exported over OTLP with `opentelemetry-otlp`,
//! and the W3C trace context of each API request (`traceparent`) continued by the request's
//! span, so a trace crosses the services that call the gateway.
//!
//! Export starts only when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` variable is set (the
//! exporter also reads the other `OTEL_EXPORTER_OTLP_*` variables); `OTEL_SERVICE_NAME`
//! names the service (the configuration's `name` otherwise).

use axum::http::HeaderMap;
use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Why tracing export could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (a bad endpoint, say).
    #[error("the OTLP exporter cannot start: {0}")]
    Exporter(String),
}

/// The tracer provider behind the layer; flush it at shutdown with [`Telemetry::shutdown`].
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// An OTLP (gRPC) exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else `None`. The
    /// spans' resource names the service (`OTEL_SERVICE_NAME`, else `service`), its
    /// `version` and its deployment `environment` (the configuration's `name`, `version`
    /// and `environment`).
    pub fn from_env(
        service: &str,
        version: &str,
        environment: &str,
    ) -> Result<Option<Self>, TelemetryError> {
        if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
        let resource = Resource::builder()
            .with_service_name(service)
            .with_attribute(KeyValue::new("service.version", version.to_owned()))
            .with_attribute(KeyValue::new(
                "deployment.environment.name",
                environment.to_owned(),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Ok(Some(Telemetry { provider }))
    }

    /// Wraps a provider built elsewhere (tests use an in-memory exporter).
    pub fn with_provider(provider: SdkTracerProvider) -> Self {
        Telemetry { provider }
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("gateway-server"))
    }

    /// Exports what is buffered and stops.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "flushing traces failed");
        }
    }
}

/// Makes `span` continue the trace of a request's `traceparent`/`tracestate` headers (a
/// request without them starts a new trace).
pub(crate) fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // Refused only when the span is disabled (no OpenTelemetry layer): nothing to continue.
    let _ = span.set_parent(parent);
}

/// Reads W3C trace context headers from an HTTP request.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

//! One connection attempt: the URL with the identity and resume parameters, the headers
//! (token, subprotocol), TLS for `wss://`, and a refused handshake read back as its JSON
//! error.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, http};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::builder::ClientBuilder;
use crate::error::ConnectError;

/// A connected socket.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The subprotocol of the gateway's JSON frames.
const SUBPROTOCOL: &str = "wsc.v1";

/// What the server said about a new connection.
pub(crate) struct Opened {
    pub(crate) socket: Socket,
    pub(crate) client_id: String,
    pub(crate) node_id: String,
}

/// What every attempt reuses: the TLS setup is made once.
pub(crate) struct Dialer {
    builder: ClientBuilder,
    connector: Option<Connector>,
}

impl Dialer {
    pub(crate) fn new(builder: ClientBuilder) -> Result<Self, ConnectError> {
        let scheme = builder.url.split("://").next().unwrap_or_default();
        let connector = match scheme {
            "ws" => None,
            "wss" => Some(Connector::Rustls(Arc::new(tls_config(
                builder.root_certificates.as_deref(),
            )?))),
            _ => {
                return Err(ConnectError::InvalidUrl {
                    url: builder.url.clone(),
                    reason: "the scheme must be ws:// or wss://".to_owned(),
                });
            }
        };
        Ok(Dialer { builder, connector })
    }

    pub(crate) fn builder(&self) -> &ClientBuilder {
        &self.builder
    }

    /// One attempt, resuming after `last_seq` when known.
    pub(crate) async fn open(&self, last_seq: Option<i64>) -> Result<Opened, ConnectError> {
        let builder = &self.builder;
        let request = self.request(last_seq)?;
        let attempt = tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            true,
            self.connector.clone(),
        );
        let (socket, response) = tokio::time::timeout(builder.connect_timeout, attempt)
            .await
            .map_err(|_| ConnectError::Timeout(builder.connect_timeout))?
            .map_err(refusal)?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Opened {
            socket,
            client_id: header("x-wsc-client-id").unwrap_or_else(|| builder.client_id.clone()),
            node_id: header("x-wsc-node-id").unwrap_or_default(),
        })
    }

    fn request(&self, last_seq: Option<i64>) -> Result<http::Request<()>, ConnectError> {
        let builder = &self.builder;
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &builder.params {
            query.append_pair(name, value);
        }
        query.append_pair("client_id", &builder.client_id);
        if let Some(seq) = last_seq {
            query.append_pair("last_seq", &seq.to_string());
        }
        let separator = if builder.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{separator}{}", builder.url, query.finish());
        let invalid = |reason: String| ConnectError::InvalidUrl {
            url: builder.url.clone(),
            reason,
        };
        let mut request = url
            .into_client_request()
            .map_err(|e| invalid(e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
        if let Some(token) = &builder.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| invalid("the token is not a valid header value".to_owned()))?;
            headers.insert(http::header::AUTHORIZATION, value);
        }
        Ok(request)
    }
}

/// The rustls client setup: the given CA certificates, or the web PKI roots.
fn tls_config(pem: Option<&[u8]>) -> Result<rustls::ClientConfig, ConnectError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    match pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| ConnectError::Tls(format!("CA certificates: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| ConnectError::Tls(format!("CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(ConnectError::Tls(
                    "no certificate in the CA PEM text".to_owned(),
                ));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// A failed handshake: the server's JSON error when it answered, else the transport error.
fn refusal(error: WsError) -> ConnectError {
    match error {
        WsError::Http(response) => {
            let status = response.status().as_u16();
            let body: serde_json::Value = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
            ConnectError::Refused {
                status,
                code: text("error"),
                message: text("message"),
            }
        }
        other => ConnectError::Io(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_identity_resume_token_and_subprotocol() {
        let builder = ClientBuilder::new("ws://127.0.0.1:1/ws")
            .user("alice smith")
            .tickets(["t1", "t2"])
            .client_id("c1")
            .token("abc");
        let dialer = Dialer::new(builder).unwrap();
        let request = dialer.request(Some(41)).unwrap();
        assert_eq!(
            request.uri().to_string(),
            "ws://127.0.0.1:1/ws?user_id=alice+smith&ticket_id=t1%2Ct2&client_id=c1&last_seq=41"
        );
        assert_eq!(request.headers()["authorization"], "Bearer abc");
        assert_eq!(request.headers()["sec-websocket-protocol"], "wsc.v1");
    }

    #[test]
    fn bad_urls_and_ca_text_are_refused_before_any_attempt() {
        let err = Dialer::new(ClientBuilder::new("http://x/ws"))
            .err()
            .unwrap();
        assert!(matches!(err, ConnectError::InvalidUrl { .. }), "{err}");
        let builder = ClientBuilder::new("wss://x/ws").root_certificates_pem("not pem");
        let err = Dialer::new(builder).err().unwrap();
        assert!(matches!(err, ConnectError::Tls(_)), "{err}");
    }
}

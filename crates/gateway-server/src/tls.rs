//! TLS on the HTTP listeners (`wss://` on the public one, `https://` on the API one) with
//! rustls on aws-lc-rs: the server configuration built from `*.tls`, certificates that reload
//! when their files change (connections that are open keep going; new handshakes get the new
//! certificate; a bad new pair keeps the old one and says why), and the accept loop that
//! serves the router over TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wsc_config::TlsConfig;

use crate::state::SharedPolicy;

/// How often the certificate files are checked for a change (two `stat` calls).
const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// How long a client may take over its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Why TLS could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{key}: cannot use {path}: {reason}")]
    File {
        /// The configuration key naming the file.
        key: String,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The certificate and key do not belong together, or rustls refused the setup.
    #[error("{key}: {reason}")]
    Setup {
        /// The configuration section.
        key: String,
        /// Why.
        reason: String,
    },
}

/// The crypto provider of every TLS listener.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// When a file last changed, as far as polling can tell.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A listener's certificate and key, swapped in place when the files change.
#[derive(Debug)]
pub(crate) struct Certificates {
    section: String,
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    look: Mutex<Look>,
}

/// The files as last looked at, and why they were refused if they were.
#[derive(Debug)]
struct Look {
    stamps: (Stamp, Stamp),
    refused: Option<TlsError>,
}

impl Certificates {
    fn load(&self) -> Result<CertifiedKey, TlsError> {
        read_pair(&self.section, &self.cert_file, &self.key_file)
    }

    /// Loads the files again when they changed since the last look. `Ok(true)` when a new
    /// certificate is in use, `Ok(false)` when nothing changed; an error (also for files
    /// that did not change since they were refused) keeps the current certificate.
    pub(crate) fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = (stamp(&self.cert_file), stamp(&self.key_file));
        let mut look = self.look.lock().unwrap_or_else(|e| e.into_inner());
        if look.stamps == now {
            return look.refused.clone().map_or(Ok(false), Err);
        }
        look.stamps = now;
        match self.load() {
            Ok(fresh) => {
                look.refused = None;
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
                Ok(true)
            }
            Err(e) => {
                look.refused = Some(e.clone());
                Err(e)
            }
        }
    }
}

impl Certificates {
    /// The configuration section (`wsc.tls`, `http.tls`).
    pub(crate) fn section(&self) -> &str {
        &self.section
    }

    /// When the certificate in use expires, in seconds since the Unix epoch.
    pub(crate) fn not_after(&self) -> Option<i64> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let leaf = current.cert.first()?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
        Some(parsed.validity().not_after.timestamp())
    }

    fn is_refused(&self) -> bool {
        self.look
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .refused
            .is_some()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// Reads a certificate chain and its private key, and checks that they belong together.
fn read_pair(section: &str, cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let file_error = |name: &str, path: &Path, reason: String| TlsError::File {
        key: format!("{section}.{name}"),
        path: path.display().to_string(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect())
        .map_err(|e| file_error("cert_file", cert_file, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(
            "cert_file",
            cert_file,
            "no CERTIFICATE in the file".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| file_error("key_file", key_file, e.to_string()))?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Setup {
        key: section.to_owned(),
        reason: format!("the certificate and the key do not go together: {e}"),
    })
}

/// The TLS acceptor of a listener configured by `section` (`wsc.tls`, `http.tls`,
/// `grpc.tls`) offering the `alpn` protocols, and its reloadable certificates.
pub(crate) fn acceptor(
    section: &str,
    config: &TlsConfig,
    alpn: &[&[u8]],
) -> Result<(TlsAcceptor, Arc<Certificates>), TlsError> {
    let (cert_file, key_file) = (
        PathBuf::from(&config.cert_file),
        PathBuf::from(&config.key_file),
    );
    let first = read_pair(section, &cert_file, &key_file)?;
    let certificates = Arc::new(Certificates {
        section: section.to_owned(),
        look: Mutex::new(Look {
            stamps: (stamp(&cert_file), stamp(&key_file)),
            refused: None,
        }),
        cert_file,
        key_file,
        current: RwLock::new(Arc::new(first)),
    });
    let setup = |reason: String| TlsError::Setup {
        key: section.to_owned(),
        reason,
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match config.min_version.as_str() {
        "1.3" => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| setup(e.to_string()))?;
    let builder = if config.client_ca_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let ca_file = Path::new(&config.client_ca_file);
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(ca_file).map_err(|e| TlsError::File {
            key: format!("{section}.client_ca_file"),
            path: config.client_ca_file.clone(),
            reason: e.to_string(),
        })? {
            let ca = ca.map_err(|e| setup(e.to_string()))?;
            roots.add(ca).map_err(|e| setup(e.to_string()))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| setup(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut server = builder.with_cert_resolver(certificates.clone());
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok((TlsAcceptor::from(Arc::new(server)), certificates))
}

/// Checks the certificate files every [`RELOAD_CHECK`] until `shutdown`, and swaps in a
/// changed pair (a bad one is logged and the current pair stays).
pub(crate) fn watch(
    tracker: &TaskTracker,
    certificates: Vec<Arc<Certificates>>,
    shutdown: CancellationToken,
) {
    if certificates.is_empty() {
        return;
    }
    tracker.spawn(async move {
        let mut ticker = tokio::time::interval(RELOAD_CHECK);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            for certs in &certificates {
                let refused_before = certs.is_refused();
                match certs.reload_if_changed() {
                    Ok(true) => tracing::info!(section = %certs.section, "TLS certificate reloaded"),
                    Ok(false) => {}
                    // Said once per refused pair, not at every check.
                    Err(_) if refused_before => {}
                    Err(e) => tracing::warn!(error = %e, "new TLS certificate refused; the current one stays"),
                }
            }
        }
    });
}

/// What a TLS listener hands on: a connection whose handshake succeeded, and its peer.
type Handshaken = (
    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    SocketAddr,
);

/// Accepts on `listener` until `shutdown` (see [`crate::listen::accept_loop`]); each
/// connection does its handshake (within [`HANDSHAKE`]) on a task of its own and, when it
/// succeeds, goes to `then`. A client that does not speak TLS (or fails the handshake) is
/// dropped; nobody else notices.
fn accept_loop<F, Fut>(
    tracker: &TaskTracker,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shutdown: CancellationToken,
    then: F,
) where
    F: Fn(Handshaken) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    crate::listen::accept_loop(tracker, listener, shutdown, move |tcp, peer| {
        let (acceptor, then) = (acceptor.clone(), then.clone());
        async move {
            match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => then((tls, peer)).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    });
}

/// Serves `app` over TLS on `listener` until `shutdown`: each connection is served as
/// HTTP/1.1 with upgrades, so the WebSocket upgrade works as on a plain listener.
pub(crate) fn serve(
    tracker: &TaskTracker,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    policy: SharedPolicy,
    shutdown: CancellationToken,
) {
    let cancel = shutdown.clone();
    accept_loop(tracker, listener, acceptor, shutdown, move |(tls, peer)| {
        let head_timeout = crate::listen::head_timeout(&policy);
        crate::listen::serve_connection(tls, peer, app.clone(), head_timeout, cancel.clone())
    });
}

/// The TLS connections of `listener`, as a stream for a server that serves them itself
/// (tonic's `serve_with_incoming`).
pub(crate) fn incoming(
    tracker: &TaskTracker,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<
    Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, std::io::Error>,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    accept_loop(tracker, listener, acceptor, shutdown, move |(tls, _)| {
        let tx = tx.clone();
        async move {
            // The server is gone when nobody receives: the connection just closes.
            let _ = tx.send(Ok(tls)).await;
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Seconds since the Unix epoch, now (certificate expiry, token times).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The `wsc_tls_certificate_expiry_seconds{listener}` gauge: seconds until each listener's
/// certificate expires (negative once it has), read at each scrape.
#[derive(Debug)]
pub(crate) struct ExpiryCollector(pub(crate) Vec<Arc<Certificates>>);

impl prometheus_client::collector::Collector for ExpiryCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        if self.0.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "wsc_tls_certificate_expiry_seconds",
            "Seconds until the certificate of a TLS listener expires",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        let now = unix_now();
        for certs in &self.0 {
            if let Some(not_after) = certs.not_after() {
                let labels = [("listener", certs.section())];
                prometheus_client::metrics::gauge::ConstGauge::new(not_after - now)
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

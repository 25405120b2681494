//! [`Pki`]: a throwaway CA made in the test (rcgen; no key files are checked in), the
//! server certificates it issues as files, and rustls clients that trust only it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use wsc_config::GatewayConfig;

/// A CA of the test, and the directory its files go to.
pub struct Pki {
    /// The CA (its certificate and key).
    pub ca: CertifiedIssuer<'static, KeyPair>,
    /// Where the files go.
    pub dir: PathBuf,
}

impl Pki {
    /// A new CA whose files go under `parent/tls-<name>-<pid>`.
    pub fn new(parent: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "wsc test CA");
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let dir = parent.join(format!("tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("TLS directory");
        Pki { ca, dir }
    }

    /// A server certificate for 127.0.0.1 and localhost, written as `cert.pem`/`key.pem`;
    /// returns its DER.
    pub fn issue(&self, common_name: &str) -> CertificateDer<'static> {
        self.issue_until(common_name, rcgen::date_time_ymd(2031, 1, 1))
    }

    /// [`issue`](Self::issue) with the end of its validity.
    pub fn issue_until(
        &self,
        common_name: &str,
        not_after: time::OffsetDateTime,
    ) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("key");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let mut params = CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.ca).expect("signed");
        // The key first: a server that watches both files must never see a new certificate
        // with the old key for longer than one check.
        std::fs::write(self.key(), key.serialize_pem()).expect("key written");
        std::fs::write(self.cert(), cert.pem()).expect("certificate written");
        cert.der().clone()
    }

    /// The server certificate file.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// The server key file.
    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// The CA certificate as a PEM file.
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir.join("ca.pem");
        std::fs::write(&path, self.ca.pem()).expect("CA written");
        path
    }

    /// The CA certificate as PEM text.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A rustls client setup that trusts only this CA.
    pub fn client_config(&self) -> ClientConfig {
        self.client_builder().with_no_client_auth()
    }

    /// A rustls client setup that trusts only this CA and speaks only `versions` (for
    /// example only TLS 1.2, against a server whose `min_version` is 1.3).
    pub fn client_config_with_versions(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> ClientConfig {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .with_root_certificates(self.roots())
            .with_no_client_auth()
    }

    /// A rustls client setup that trusts this CA and shows a client certificate it issued
    /// (common name `billing-service`).
    pub fn client_config_with_cert(&self) -> ClientConfig {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "billing-service");
        let cert = params.signed_by(&key, &self.ca).expect("signed");
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key");
        self.client_builder()
            .with_client_auth_cert(vec![cert.der().clone()], key)
            .expect("client certificate")
    }

    fn client_builder(
        &self,
    ) -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(self.roots())
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("CA added");
        roots
    }

    /// `config` with `wsc.tls` and `http.tls` on, using this CA's server files.
    pub fn server_config(&self, mut config: GatewayConfig) -> GatewayConfig {
        for tls in [&mut config.wsc.tls, &mut config.http.tls] {
            tls.enabled = true;
            tls.cert_file = path(&self.cert());
            tls.key_file = path(&self.key());
        }
        config
    }
}

/// A path as the config's string.
pub fn path(p: &Path) -> String {
    p.to_str().expect("UTF-8 path").to_owned()
}

//! TLS on the public (`wss://`), API (`https://`) and gRPC listeners, with a throwaway CA
//! made in the test (rcgen; no key files are checked in): round trips, a plain-text client
//! refused without harm, the 10 s handshake deadline, `min_version`, the API sharing the
//! public port, certificate rotation (also on gRPC, by the 2-second poll) while a connection
//! stays open, a bad new pair that leaves the old one in place, and start-up refusals.

mod support;

use std::path::Path;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use gateway_server::{RunningServer, Server, StartError};
use rcgen::{CertificateParams, DnType, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use wsc_config::GatewayConfig;
use wsc_testkit::tls::{Pki, path};

/// A CA of this test (see [`wsc_testkit::tls::Pki`]).
fn test_pki(name: &str) -> Pki {
    Pki::new(Path::new(env!("CARGO_TARGET_TMPDIR")), name)
}

/// A client that trusts only the test's CA.
fn connector(pki: &Pki) -> TlsConnector {
    TlsConnector::from(Arc::new(pki.client_config()))
}

/// `wsc.tls` and `http.tls` on, with the CA's files.
fn tls_config(pki: &Pki) -> GatewayConfig {
    pki.server_config(local_config())
}

async fn tls(connector: &TlsConnector, addr: std::net::SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("a handshake in time")
        .expect("the handshake succeeds")
}

/// One HTTP/1.1 exchange over TLS: status and body.
async fn https(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let mut stream = tls(connector, addr).await;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("an answer in time")
        .ok();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

type Wss = tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>;

async fn wss(connector: &TlsConnector, server: &RunningServer, query: &str) -> Wss {
    let stream = tls(connector, server.public_addr()).await;
    let url = format!("wss://127.0.0.1:{}/ws?{query}", server.public_addr().port());
    let (ws, response) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("the upgrade over TLS succeeds");
    assert_eq!(response.status(), 101);
    ws
}

async fn ping(ws: &mut Wss) {
    ws.send(Message::text(r#"{"message_type":"ping"}"#))
        .await
        .unwrap();
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .unwrap();
        if let Message::Text(text) = frame {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            if json["message_type"] == "pong" {
                return;
            }
        }
    }
}

#[tokio::test]
async fn wss_and_https_carry_messages_with_a_custom_ca() {
    let pki = test_pki("round-trip");
    pki.issue("v1");
    let server = Server::new(tls_config(&pki)).start().await.expect("starts");
    let connector = connector(&pki);
    let mut ws = wss(&connector, &server, "user_id=alice").await;
    ping(&mut ws).await;

    let (status, body) = https(
        &connector,
        server.api_addr(),
        "POST",
        "/api/v1/users/alice/messages",
        r#"{"content":"over tls"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let message = loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            if json["content"] == "over tls" {
                break json;
            }
        }
    };
    assert_eq!(message["receiver"], "alice");
    let (status, _) = https(&connector, server.api_addr(), "GET", "/health", "").await;
    assert_eq!(status, 200);

    // Readiness and the metrics tell when each listener's certificate expires.
    let (status, body) = https(&connector, server.api_addr(), "GET", "/ready", "").await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    let until_2031 = 1_924_992_000 - now();
    for listener in ["wsc.tls", "http.tls"] {
        assert_eq!(ready["checks"][listener], "ok", "{body}");
        let expiry = &ready["certificates"][listener];
        assert_eq!(expiry["not_after"], "2031-01-01T00:00:00Z", "{body}");
        let left = expiry["expires_in_seconds"].as_i64().unwrap();
        assert!((left - until_2031).abs() < 60, "{left} vs {until_2031}");
    }
    let (_, metrics) = https(&connector, server.api_addr(), "GET", "/metrics", "").await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("wsc_tls_certificate_expiry_seconds{listener=\"wsc.tls\"}"))
        .unwrap_or_else(|| panic!("no expiry metric:\n{metrics}"));
    let left: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((left - until_2031).abs() < 60, "{line}");
    server.stop(WAIT).await;
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn an_expired_certificate_makes_the_node_not_ready() {
    let pki = test_pki("expired");
    pki.issue_until("old", rcgen::date_time_ymd(2021, 1, 1));
    let mut config = tls_config(&pki);
    config.http.tls.enabled = false;
    let server = Server::new(config).start().await.expect("starts");
    let (status, body) = get(server.api_addr(), "/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(
        body["checks"]["wsc.tls"],
        "the certificate expired at 2021-01-01T00:00:00Z"
    );
    assert!(
        body["certificates"]["wsc.tls"]["expires_in_seconds"]
            .as_i64()
            .unwrap()
            < 0
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn a_plain_text_client_is_refused_and_tls_clients_go_on() {
    let pki = test_pki("plain");
    pki.issue("v1");
    let server = Server::new(tls_config(&pki)).start().await.expect("starts");
    for addr in [server.api_addr(), server.public_addr()] {
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        // The server drops the connection after a failed handshake (at most a TLS alert):
        // never an HTTP answer.
        tokio::time::timeout(WAIT, plain.read_to_end(&mut answer))
            .await
            .expect("the connection ends in time")
            .ok();
        assert!(
            !String::from_utf8_lossy(&answer).contains("HTTP/1.1"),
            "plain HTTP got an answer: {answer:?}"
        );
    }
    let (status, _) = https(&connector(&pki), server.api_addr(), "GET", "/health", "").await;
    assert_eq!(status, 200, "TLS clients are served after the refusal");
    server.stop(WAIT).await;
}

/// The certificate a new TLS connection is served.
async fn served(connector: &TlsConnector, addr: std::net::SocketAddr) -> CertificateDer<'static> {
    let stream = tls(connector, addr).await;
    let (_, session) = stream.get_ref();
    session.peer_certificates().unwrap()[0].clone()
}

#[tokio::test]
async fn certificates_rotate_while_a_connection_stays_open() {
    let pki = test_pki("rotate");
    let first = pki.issue("v1");
    let server = Server::new(tls_config(&pki)).start().await.expect("starts");
    let connector = connector(&pki);
    assert_eq!(served(&connector, server.public_addr()).await, first);
    let mut open = wss(&connector, &server, "user_id=bob").await;

    let second = pki.issue("v2");
    let deadline = tokio::time::Instant::now() + WAIT;
    while served(&connector, server.public_addr()).await != second {
        assert!(
            tokio::time::Instant::now() < deadline,
            "v2 was never served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(served(&connector, server.api_addr()).await, second);
    // The connection made with v1 goes on.
    ping(&mut open).await;

    // A broken pair (a certificate with another key) is refused; v2 stays in use.
    let other_key = KeyPair::generate().unwrap();
    std::fs::write(pki.key(), other_key.serialize_pem()).unwrap();
    // Looked at now rather than at the next check: the refusal is the answer.
    let refused = server.reload_certificates().unwrap_err();
    assert!(
        refused.to_string().contains("do not go together"),
        "{refused}"
    );
    assert_eq!(served(&connector, server.public_addr()).await, second);
    ping(&mut open).await;
    server.stop(WAIT).await;
}

#[tokio::test]
async fn unusable_tls_settings_fail_the_start_with_the_reason() {
    let pki = test_pki("bad");
    pki.issue("v1");
    let mut config = tls_config(&pki);
    config.http.tls.cert_file = path(&pki.dir.join("missing.pem"));
    match Server::new(config).start().await {
        Err(e @ StartError::Tls(_)) => {
            let text = e.to_string();
            assert!(text.contains("http.tls.cert_file"), "{text}");
            assert!(text.contains("missing.pem"), "{text}");
        }
        other => panic!("expected a TLS error, got {:?}", other.map(|_| ())),
    }

    std::fs::write(pki.key(), KeyPair::generate().unwrap().serialize_pem()).unwrap();
    match Server::new(tls_config(&pki)).start().await {
        Err(e @ StartError::Tls(_)) => {
            assert!(e.to_string().contains("do not go together"), "{e}");
        }
        other => panic!("expected a TLS error, got {:?}", other.map(|_| ())),
    }

    let mut config = local_config();
    config.grpc.tls.enabled = true;
    config.grpc.tls.cert_file = path(&pki.dir.join("nope.pem"));
    config.grpc.tls.key_file = path(&pki.key());
    match Server::new(config).start().await {
        Err(e) => assert!(e.to_string().contains("grpc.tls.cert_file"), "{e}"),
        Ok(_) => panic!("a missing gRPC certificate must fail the start"),
    }
}

#[tokio::test]
async fn mutual_tls_admits_a_client_certificate_and_refuses_its_absence() {
    let pki = test_pki("mtls");
    pki.issue("v1");
    let mut config = tls_config(&pki);
    config.http.tls.client_ca_file = path(&pki.ca_file());
    let server = Server::new(config).start().await.expect("starts");

    let (status, _) = https(
        &TlsConnector::from(Arc::new(pki.client_config_with_cert())),
        server.api_addr(),
        "GET",
        "/api/v1/stats",
        "",
    )
    .await;
    assert_eq!(status, 200, "a client certificate from the CA is admitted");

    // Without one: the server refuses it during the handshake (TLS 1.3 tells the client
    // on its first read), and no HTTP answer ever comes.
    let tcp = TcpStream::connect(server.api_addr()).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let answer = match connector(&pki).connect(name, tcp).await {
        Err(_) => String::new(),
        Ok(mut stream) => {
            let _ = stream
                .write_all(b"GET /api/v1/stats HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await;
            let mut answer = Vec::new();
            let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
                .await
                .expect("the connection ends in time");
            assert!(read.is_err() || answer.is_empty(), "{answer:?}");
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    assert!(!answer.contains("HTTP/1.1"), "{answer}");
    // The public listener asks for no client certificate.
    let mut ws = wss(&connector(&pki), &server, "user_id=m").await;
    ping(&mut ws).await;
    server.stop(WAIT).await;
}

/// A gRPC channel over TLS that trusts the test CA, with a client certificate or without.
async fn grpc_tls(
    pki: &Pki,
    server: &RunningServer,
    client: Option<(String, String)>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pki.ca.pem()))
        .domain_name("localhost");
    if let Some((cert, key)) = client {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let addr = server.grpc_addr().unwrap();
    tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{}", addr.port()))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test]
async fn grpc_runs_over_tls_with_mutual_tls() {
    use gateway_server::grpc::proto::StatsRequest;
    use gateway_server::grpc::proto::gateway_client::GatewayClient;

    let pki = test_pki("grpc");
    pki.issue("v1");
    let mut config = local_config();
    config.grpc.tls.enabled = true;
    config.grpc.tls.cert_file = path(&pki.cert());
    config.grpc.tls.key_file = path(&pki.key());
    config.grpc.tls.client_ca_file = path(&pki.ca_file());
    let server = Server::new(config).start().await.expect("starts");

    // A client certificate from the CA: served.
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "svc");
    let cert = params.signed_by(&key, &pki.ca).unwrap();
    let channel = grpc_tls(&pki, &server, Some((cert.pem(), key.serialize_pem())))
        .await
        .expect("a TLS channel with a client certificate");
    let stats = GatewayClient::new(channel)
        .stats(StatsRequest {})
        .await
        .expect("a call over TLS")
        .into_inner();
    assert!(!stats.stats_json.is_empty());

    // Without one: no call gets through.
    let refused = match grpc_tls(&pki, &server, None).await {
        Err(_) => true,
        Ok(channel) => GatewayClient::new(channel)
            .stats(StatsRequest {})
            .await
            .is_err(),
    };
    assert!(refused, "a client without a certificate must be refused");

    // Readiness names the gRPC certificate too.
    let (status, body) = get(server.api_addr(), "/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["grpc.tls"], "ok");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn a_tls_12_client_is_refused_when_min_version_is_13() {
    let pki = test_pki("min-version");
    pki.issue("v1");
    let mut config = tls_config(&pki);
    config.wsc.tls.min_version = "1.3".to_owned();
    config.http.tls.min_version = "1.3".to_owned();
    let server = Server::new(config).start().await.expect("starts");
    let tls12 = TlsConnector::from(Arc::new(
        pki.client_config_with_versions(&[&rustls::version::TLS12]),
    ));
    let tls13 = TlsConnector::from(Arc::new(
        pki.client_config_with_versions(&[&rustls::version::TLS13]),
    ));
    for addr in [server.public_addr(), server.api_addr()] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let handshake = tokio::time::timeout(WAIT, tls12.connect(name, tcp))
            .await
            .expect("the handshake ends in time");
        let error = handshake.expect_err("a TLS 1.2 client must fail the handshake");
        assert!(
            error.to_string().contains("ProtocolVersion"),
            "{addr}: {error}"
        );
        let stream = tls(&tls13, addr).await;
        assert_eq!(
            stream.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
    }
    // The default (1.2) admits the TLS 1.2 client.
    let server_12 = Server::new(tls_config(&pki)).start().await.expect("starts");
    let stream = tls(&tls12, server_12.public_addr()).await;
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    server.stop(WAIT).await;
    server_12.stop(WAIT).await;
}

#[tokio::test]
async fn the_api_on_the_public_port_speaks_tls_with_wsc_tls() {
    let pki = test_pki("shared-port");
    pki.issue("v1");
    let mut config = local_config();
    config.wsc.tls.enabled = true;
    config.wsc.tls.cert_file = path(&pki.cert());
    config.wsc.tls.key_file = path(&pki.key());
    let port = wsc_testkit::free_port();
    config.wsc.node_port = port;
    config.http.port = port;
    let server = Server::new(config).start().await.expect("starts");
    assert_eq!(server.api_addr(), server.public_addr());
    let connector = connector(&pki);
    let mut ws = wss(&connector, &server, "user_id=sha").await;
    ping(&mut ws).await;
    let (status, body) = https(
        &connector,
        server.public_addr(),
        "POST",
        "/api/v1/users/sha/messages",
        r#"{"content":"one port"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(report["delivered"], 1, "{report}");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn a_tls_handshake_that_does_not_come_is_dropped_after_10_s() {
    let pki = test_pki("handshake-deadline");
    pki.issue("v1");
    let server = Server::new(tls_config(&pki)).start().await.expect("starts");
    let mut idle = TcpStream::connect(server.public_addr()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        idle.read_to_end(&mut answer),
    )
    .await
    .expect("the server drops the connection within 20 s");
    let waited = started.elapsed();
    assert!(read.is_ok() || answer.is_empty(), "{read:?}");
    assert!(answer.is_empty(), "the server wrote {answer:?}");
    assert!(
        waited >= std::time::Duration::from_secs(9),
        "dropped after {waited:?}, before the 10 s deadline"
    );
    assert!(
        waited <= std::time::Duration::from_secs(13),
        "dropped only after {waited:?}"
    );
    // TLS clients are served meanwhile and after.
    let (status, _) = https(&connector(&pki), server.api_addr(), "GET", "/health", "").await;
    assert_eq!(status, 200);
    server.stop(WAIT).await;
}

/// Polls (by handshakes every 50 ms) until `addr` serves `wanted`; how long that took.
async fn until_served(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
    wanted: &CertificateDer<'static>,
) -> std::time::Duration {
    let since = std::time::Instant::now();
    while served(connector, addr).await != *wanted {
        assert!(
            since.elapsed() < std::time::Duration::from_secs(5),
            "the new certificate was not served within 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    since.elapsed()
}

#[tokio::test]
async fn the_grpc_certificate_is_reloaded_by_the_2_s_poll() {
    let pki = test_pki("grpc-reload");
    let first = pki.issue("v1");
    let mut config = local_config();
    config.grpc.tls.enabled = true;
    config.grpc.tls.cert_file = path(&pki.cert());
    config.grpc.tls.key_file = path(&pki.key());
    let server = Server::new(config).start().await.expect("starts");
    let grpc = server.grpc_addr().expect("gRPC on");
    let connector = connector(&pki);
    assert_eq!(served(&connector, grpc).await, first);

    // No call to `reload_certificates`: the poll finds each new pair. The first one tells
    // when a poll just ran; the next pair then waits for the following poll, 2 s later.
    let second = pki.issue("v2");
    until_served(&connector, grpc, &second).await;
    let third = pki.issue("v3");
    let waited = until_served(&connector, grpc, &third).await;
    assert!(
        waited >= std::time::Duration::from_millis(1500),
        "served after {waited:?}: sooner than the next poll"
    );
    assert!(
        waited <= std::time::Duration::from_millis(3500),
        "served after {waited:?}: later than the next poll"
    );
    // And the calls go on over the new certificate.
    let channel = grpc_tls(&pki, &server, None).await.expect("a TLS channel");
    let stats = gateway_server::grpc::proto::gateway_client::GatewayClient::new(channel)
        .stats(gateway_server::grpc::proto::StatsRequest {})
        .await
        .expect("a call over the reloaded certificate");
    assert!(!stats.into_inner().stats_json.is_empty());
    server.stop(WAIT).await;
}

//! Attacks before the upgrade: connections that never finish their request head, and heads
//! too large to read.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{Attack, Outcome, Target, expect};

/// The request head deadline the handshake attacks run with.
const HEAD_DEADLINE: &str = "2s";

pub(super) fn attacks() -> Vec<Attack> {
    vec![
        Attack {
            name: "half_open_connections",
            expected: "each closed once the head deadline passes; others connect meanwhile",
            limit: "`wsc.security.handshake_timeout` as the request head deadline",
            settings: &[("GATEWAY__WSC__SECURITY__HANDSHAKE_TIMEOUT", HEAD_DEADLINE)],
            run: |t| Box::pin(half_open(t)),
        },
        Attack {
            name: "slowloris_handshake",
            expected: "closed at the head deadline, however slowly bytes keep coming",
            limit: "`wsc.security.handshake_timeout` as the request head deadline",
            settings: &[("GATEWAY__WSC__SECURITY__HANDSHAKE_TIMEOUT", HEAD_DEADLINE)],
            run: |t| Box::pin(slowloris(t)),
        },
        Attack {
            name: "descriptor_exhaustion",
            expected: "the accept loop pauses instead of spinning; served again once freed",
            limit: "the pause after a failed accept (100 ms) and the request head deadline",
            settings: &[("GATEWAY__WSC__SECURITY__HANDSHAKE_TIMEOUT", HEAD_DEADLINE)],
            run: |t| Box::pin(descriptor_exhaustion(t)),
        },
        Attack {
            name: "huge_query_string",
            expected: "431, nothing parsed",
            limit: "the request head limit (64 KiB)",
            settings: &[],
            run: |t| {
                Box::pin(status_of(
                    t,
                    format!("/ws?user_id=q&pad={}", "a".repeat(500_000)),
                    String::new(),
                    431,
                ))
            },
        },
        Attack {
            name: "huge_header",
            expected: "431, nothing parsed",
            limit: "the request head limit (64 KiB)",
            settings: &[],
            run: |t| {
                Box::pin(status_of(
                    t,
                    "/ws?user_id=h".into(),
                    format!("x-pad: {}\r\n", "a".repeat(500_000)),
                    431,
                ))
            },
        },
        Attack {
            name: "too_many_headers",
            expected: "431, nothing parsed",
            limit: "the HTTP layer's 100 headers",
            settings: &[],
            run: |t| {
                Box::pin(status_of(
                    t,
                    "/ws?user_id=m".into(),
                    (0..200).map(|i| format!("x-h{i}: v\r\n")).collect(),
                    431,
                ))
            },
        },
    ]
}

/// How many half-open connections the attack opens (each costs the runner a descriptor too).
const HALF_OPEN: usize = 2_000;

async fn half_open(target: Target) -> Outcome {
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(HALF_OPEN);
    for i in 0..HALF_OPEN {
        let socket = TcpStream::connect(target.public)
            .await
            .map_err(|e| format!("connection {i}: {e}"))?;
        sockets.push(socket);
    }
    // While they are held, a real client still gets in.
    let _client = wsc_testkit::ws::try_connect(&target.ws_url("user_id=meanwhile"), &[])
        .await
        .map_err(|e| format!("a client cannot connect beside the half-open ones: {e}"))?;
    let waits = sockets.into_iter().map(|mut socket| async move {
        let mut buf = [0u8; 1024];
        tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await
        .is_ok()
    });
    let closed = futures_util::future::join_all(waits).await;
    let open = closed.iter().filter(|c| !**c).count();
    expect("connections still open after 15 s", open, 0)?;
    Ok(format!(
        "{HALF_OPEN} half-open connections, all closed by the server within {:.1} s",
        started.elapsed().as_secs_f64()
    ))
}

async fn slowloris(target: Target) -> Outcome {
    let mut socket = TcpStream::connect(target.public)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    socket
        .write_all(b"GET /ws?user_id=slow HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .map_err(|e| e.to_string())?;
    // One more byte every 200 ms, for up to 15 s, while reading what the server answers.
    let (mut reader, mut writer) = socket.into_split();
    let trickle = async move {
        for _ in 0..75 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(b"a").await.is_err() {
                return;
            }
        }
    };
    let answer = async {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match tokio::io::AsyncReadExt::read(&mut reader, &mut buf).await {
                Ok(0) | Err(_) => return bytes,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    };
    let answer = tokio::select! {
        answer = answer => answer,
        () = trickle => return Err("still open after 15 s of trickling".into()),
    };
    let elapsed = started.elapsed();
    // hyper ends a connection whose head is late without an answer.
    expect("the answer", String::from_utf8_lossy(&answer).as_ref(), "")?;
    Ok(format!(
        "closed without an answer {:.1} s into the trickled head",
        elapsed.as_secs_f64()
    ))
}

async fn status_of(target: Target, path: String, headers: String, want: u16) -> Outcome {
    let (status, size) = crate::raw::upgrade_status(target.public, &path, &headers).await?;
    expect("the status", status, want)?;
    Ok(format!("{status}, {size} byte head refused"))
}

/// CPU seconds (user + system) of process `pid` so far.
fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.stat())
        .map_err(|e| e.to_string())?;
    Ok((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

async fn descriptor_exhaustion(target: Target) -> Outcome {
    // Lower the server's descriptor limit to what it uses now plus 40 (with `prlimit`, from
    // util-linux), then open far more connections than that.
    let open = crate::server::sample(target.pid)?.fds;
    let limit = open + 40;
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &target.pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .map_err(|e| format!("prlimit: {e}"))?;
    if !status.success() {
        return Err(format!("prlimit failed: {status}"));
    }
    let mut sockets = Vec::new();
    for i in 0..200 {
        let socket = TcpStream::connect(target.public)
            .await
            .map_err(|e| format!("connection {i}: {e}"))?;
        sockets.push(socket);
    }
    // While the server is out of descriptors, its accept loop must not spin a core.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = cpu_seconds(target.pid)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let busy = cpu_seconds(target.pid)? - before;
    if busy > 0.3 {
        return Err(format!(
            "the server used {busy:.2} s of CPU in 1 s while out of descriptors"
        ));
    }
    drop(sockets);
    // Once the attackers are gone (and the head deadline closed what was accepted), a real
    // client gets in again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match wsc_testkit::ws::try_connect(&target.ws_url("user_id=after"), &[]).await {
            Ok(_) => break,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("no client got in 15 s after the attack: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    Ok(format!(
        "200 connections against {limit} descriptors: {busy:.2} s of CPU in 1 s while out of \
         descriptors, served again after"
    ))
}

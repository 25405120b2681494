//! A WebSocket client on a raw socket: the upgrade written by hand and frames built byte by
//! byte, so that an attack can send what no WebSocket library would (unmasked frames,
//! reserved bits and opcodes, oversized control frames, a length of 2^63), and read what the
//! server answers without a library's own checks in the way.
//!
//! Writing frames by hand is the point here; the server side parses them with tungstenite.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opcodes (RFC 6455, section 5.2).
pub mod opcode {
    /// Continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// A text frame.
    pub const TEXT: u8 = 0x1;
    /// A ping.
    pub const PING: u8 = 0x9;
}

/// The FIN bit: the last frame of a message.
pub const FIN: u8 = 0x80;

/// The mask every client frame here uses (its value does not matter to the server).
const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// A frame: `first` is the first byte as sent (FIN, RSV1-3, opcode), `masked` whether the
/// payload is masked as a client must.
pub fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = header(first, payload.len() as u64, masked);
    out.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, b)| if masked { b ^ MASK[i % 4] } else { *b }),
    );
    out
}

/// Just a frame header announcing `len` payload bytes (with the mask key when masked).
pub fn header(first: u8, len: u64, masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![first];
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=65535 => {
            out.push(mask_bit | 126);
            out.extend((len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend(len.to_be_bytes());
        }
    }
    if masked {
        out.extend(MASK);
    }
    out
}

/// A connection upgraded by hand.
#[derive(Debug)]
pub struct RawSocket {
    stream: TcpStream,
}

/// What the server did to a raw connection after an attack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// A close frame with this code and reason (then the connection ended).
    Close(u16, String),
    /// The connection ended without a close frame.
    Dropped,
    /// Still open after the wait.
    Open,
}

impl RawSocket {
    /// Opens a TCP connection and upgrades `path_and_query`; fails unless the answer is 101.
    pub async fn upgrade(addr: SocketAddr, path_and_query: &str) -> Result<Self, String> {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\n\
             connection: upgrade\r\nsec-websocket-version: 13\r\n\
             sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write the upgrade: {e}"))?;
        let head = read_head(&mut stream, Duration::from_secs(10)).await?;
        if !head.starts_with("HTTP/1.1 101") {
            return Err(format!("upgrade refused: {head}"));
        }
        Ok(RawSocket { stream })
    }

    /// Writes `bytes` as they are. A write the server refuses (it closed) is an error.
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads the server's frames for at most `within` and says how the connection ended.
    /// Text frames and pings before the close are skipped.
    pub async fn ending(&mut self, within: Duration) -> Ending {
        match tokio::time::timeout(within, self.read_until_close()).await {
            Ok(ending) => ending,
            Err(_) => Ending::Open,
        }
    }

    async fn read_until_close(&mut self) -> Ending {
        loop {
            let Ok((opcode, payload)) = self.read_frame().await else {
                return Ending::Dropped;
            };
            if opcode == 0x8 {
                let code = payload
                    .get(..2)
                    .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                return Ending::Close(code, reason.into_owned());
            }
        }
    }

    /// The next frame's opcode and payload (server frames are not masked).
    pub async fn read_frame(&mut self) -> std::io::Result<(u8, Vec<u8>)> {
        let stream = &mut self.stream;
        let mut header = [0u8; 2];
        stream.read_exact(&mut header).await?;
        let mut len = u64::from(header[1] & 0x7f);
        if len == 126 {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).await?;
            len = u64::from(u16::from_be_bytes(ext));
        } else if len == 127 {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).await?;
            len = u64::from_be_bytes(ext);
        }
        let mut payload = vec![0u8; len.min(1 << 24) as usize];
        stream.read_exact(&mut payload).await?;
        Ok((header[0] & 0x0f, payload))
    }

    /// Whether the server ended the connection (EOF or reset) within `within`, reading and
    /// discarding anything it sent before.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let drain = async {
            let mut buf = [0u8; 4096];
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        };
        tokio::time::timeout(within, drain).await.is_ok()
    }
}

/// Reads an HTTP response head (byte by byte, so nothing after it is consumed).
pub async fn read_head(stream: &mut TcpStream, within: Duration) -> Result<String, String> {
    let read = async {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                Ok(_) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&head))),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok(String::from_utf8_lossy(&head).into_owned())
    };
    tokio::time::timeout(within, read)
        .await
        .map_err(|_| "no response head in time".to_owned())?
}

/// Sends a WebSocket upgrade of `path_and_query` with `extra_headers` (each line ending in
/// CRLF) and returns the answer's status and the request's size. The server may answer and
/// close before it read the whole request.
pub async fn upgrade_status(
    addr: SocketAddr,
    path_and_query: &str,
    extra_headers: &str,
) -> Result<(u16, usize), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n\
         connection: upgrade\r\nsec-websocket-version: 13\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra_headers}\r\n"
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let head = read_head(&mut stream, Duration::from_secs(10)).await?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, request.len()))
}

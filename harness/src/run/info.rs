//! Fetches `/info` through a topology with the cell's own protocol, to see which protocol
//! reached the app.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::model::{LoadConfig, Proto};
use crate::tls::{ClientTls, Stream};

/// The body of `GET /info`, or why it could not be had.
pub fn fetch(cfg: &LoadConfig) -> Result<serde_json::Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), fetch_async(cfg))
            .await
            .map_err(|_| "timed out".to_string())?
    })
}

async fn fetch_async(cfg: &LoadConfig) -> Result<serde_json::Value, String> {
    let tcp = tokio::net::TcpStream::connect(cfg.addr)
        .await
        .map_err(|e| e.to_string())?;
    let (stream, h2) = match &cfg.tls {
        Some(t) => {
            let tls = ClientTls::build(t).map_err(|e| e.to_string())?;
            let (s, facts) = tls.connect(tcp).await.map_err(|e| e.to_string())?;
            (s, facts.alpn.as_deref() == Some("h2"))
        }
        None => (
            Stream::Tcp(tcp),
            matches!(cfg.proto, Proto::H2c | Proto::H2cUpgrade),
        ),
    };
    let body = if h2 {
        let (client, conn) = h2::client::handshake(stream)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut client = client.ready().await.map_err(|e| e.to_string())?;
        let req = http::Request::get(format!("{}://{}/info", cfg.scheme, cfg.authority))
            .body(())
            .map_err(|e| e.to_string())?;
        let (resp, _) = client.send_request(req, true).map_err(|e| e.to_string())?;
        let mut body = resp.await.map_err(|e| e.to_string())?.into_body();
        let mut out = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            let _ = body.flow_control().release_capacity(chunk.len());
            out.extend_from_slice(&chunk);
        }
        out
    } else {
        let mut s = stream;
        let req = format!(
            "GET /info HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            cfg.authority
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw).await;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no HTTP response")?;
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let mut body = raw[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        body
    };
    serde_json::from_slice(&body)
        .map_err(|e| format!("/info is not JSON ({e}): is the target a server under test?"))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..i])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 || b.len() < i + 2 + size {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[(i + 4 + size).min(b.len())..];
    }
    out
}

//! What a server knows about one client connection, handed to every request handler.

use std::net::SocketAddr;

/// TLS facts of a connection whose TLS ended in this process.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TlsFacts {
    /// `rustls` or `openssl`.
    pub stack: &'static str,
    /// Protocol version, e.g. `TLSv1.3`.
    pub version: String,
    /// Cipher suite (IANA name with rustls, OpenSSL name with OpenSSL).
    pub cipher: String,
    /// IANA code point of the cipher suite.
    pub cipher_code: u16,
    /// Negotiated ALPN protocol, if any.
    pub alpn: Option<String>,
    /// Server name the client asked for (SNI), if any.
    pub sni: Option<String>,
}

/// Facts about one accepted connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The peer's address.
    pub remote: SocketAddr,
    /// Our address.
    pub local: SocketAddr,
    /// TLS facts, when the connection is TLS.
    pub tls: Option<TlsFacts>,
    /// Largest request body accepted, in bytes.
    pub max_body: u64,
    /// The peer's IP address as a header value, made on first use.
    pub remote_ip: std::sync::OnceLock<http::HeaderValue>,
}

impl ConnInfo {
    /// The peer's IP address as a header value (X-Forwarded-For).
    pub fn remote_ip_header(&self) -> http::HeaderValue {
        self.remote_ip
            .get_or_init(|| {
                http::HeaderValue::from_str(&self.remote.ip().to_string())
                    .expect("an IP is a valid header")
            })
            .clone()
    }

    /// `https` for TLS connections, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

//! Platform profiles as data: the server side (how an OS or an old OpenSSL configures TLS)
//! and the client side (what a browser, OpenSSL or a legacy client offers). Both binaries
//! read them: `sut --platform-profile` applies a server profile, `h2lab probe
//! --client-profile` a client one, and the matrix computes its expectations from the same
//! rows. Sources are named per row; ../shared/reference/tls-platform-profiles.md has the
//! observed outcomes.

use crate::appendix_a::APPENDIX_A;

/// TLS implementations a profile can be applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stack {
    /// rustls (ring provider).
    Rustls,
    /// OpenSSL 3.x.
    Openssl,
}

/// A server platform profile.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ServerProfile {
    /// Name on the command line and in scenario files.
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// Lowest TLS version (`1.2` or `1.3`).
    pub min: &'static str,
    /// Highest TLS version.
    pub max: &'static str,
    /// TLS 1.2 suites in server preference order (OpenSSL names); empty with `max = 1.3`
    /// and `min = 1.3`.
    pub tls12_suites: &'static [&'static str],
    /// Key exchange groups (OpenSSL list syntax), when the platform restricts them.
    pub groups: Option<&'static str>,
    /// Whether the server negotiates ALPN at all.
    pub alpn: bool,
    /// Stacks that can express the profile (rustls has no CBC, RSA key exchange or DHE).
    pub stacks: &'static [Stack],
    /// Where the row comes from.
    pub source: &'static str,
}

const BOTH: &[Stack] = &[Stack::Rustls, Stack::Openssl];
const OPENSSL: &[Stack] = &[Stack::Openssl];

/// Every server profile.
pub const SERVER_PROFILES: &[ServerProfile] = &[
    ServerProfile {
        name: "modern",
        aliases: &["linux-openssl-1.0.2+"],
        min: "1.2",
        max: "1.3",
        tls12_suites: &[
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "ECDHE-RSA-CHACHA20-POLY1305",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
        ],
        groups: None,
        alpn: true,
        stacks: BOTH,
        source: "Linux with OpenSSL >= 1.0.2 (ALPN), Mozilla intermediate: ECDHE + AEAD only",
    },
    ServerProfile {
        name: "windows-2016+",
        aliases: &["windows-2016"],
        min: "1.2",
        max: "1.2",
        tls12_suites: &[
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-SHA384",
            "ECDHE-ECDSA-AES128-SHA256",
            "ECDHE-RSA-AES256-SHA384",
            "ECDHE-RSA-AES128-SHA256",
            "ECDHE-ECDSA-AES256-SHA",
            "ECDHE-ECDSA-AES128-SHA",
            "ECDHE-RSA-AES256-SHA",
            "ECDHE-RSA-AES128-SHA",
            "AES256-GCM-SHA384",
            "AES128-GCM-SHA256",
            "AES256-SHA256",
            "AES128-SHA256",
            "AES256-SHA",
            "AES128-SHA",
        ],
        groups: Some("P-256:P-384"),
        alpn: true,
        stacks: OPENSSL,
        source: "Schannel default order, Windows 10 / Server 2016",
    },
    ServerProfile {
        name: "windows-2012r2",
        aliases: &["windows-8.1"],
        min: "1.2",
        max: "1.2",
        tls12_suites: &[
            "ECDHE-RSA-AES256-SHA384",
            "ECDHE-RSA-AES128-SHA256",
            "ECDHE-RSA-AES256-SHA",
            "ECDHE-RSA-AES128-SHA",
            "DHE-RSA-AES256-GCM-SHA384",
            "DHE-RSA-AES128-GCM-SHA256",
            "AES256-GCM-SHA384",
            "AES128-GCM-SHA256",
            "AES256-SHA256",
            "AES128-SHA256",
            "AES256-SHA",
            "AES128-SHA",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-SHA384",
            "ECDHE-ECDSA-AES128-SHA256",
            "ECDHE-ECDSA-AES256-SHA",
            "ECDHE-ECDSA-AES128-SHA",
        ],
        groups: Some("P-256:P-384"),
        alpn: true,
        stacks: OPENSSL,
        source: "Schannel default order, Windows 8.1 / Server 2012 R2 with update 2919355: \
                 no ECDHE-RSA with AES-GCM",
    },
    ServerProfile {
        name: "openssl-1.0.1",
        aliases: &[],
        min: "1.2",
        max: "1.2",
        tls12_suites: &[
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES256-SHA384",
            "ECDHE-ECDSA-AES256-SHA384",
            "ECDHE-RSA-AES256-SHA",
            "ECDHE-ECDSA-AES256-SHA",
            "DHE-RSA-AES256-GCM-SHA384",
            "DHE-RSA-AES256-SHA256",
            "DHE-RSA-AES256-SHA",
            "AES256-GCM-SHA384",
            "AES256-SHA256",
            "AES256-SHA",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES128-SHA256",
            "ECDHE-ECDSA-AES128-SHA256",
            "ECDHE-RSA-AES128-SHA",
            "ECDHE-ECDSA-AES128-SHA",
            "DHE-RSA-AES128-GCM-SHA256",
            "DHE-RSA-AES128-SHA256",
            "DHE-RSA-AES128-SHA",
            "AES128-GCM-SHA256",
            "AES128-SHA256",
            "AES128-SHA",
        ],
        groups: None,
        alpn: false,
        stacks: OPENSSL,
        source: "Linux with OpenSSL 1.0.1: DEFAULT (ALL:!aNULL:!eNULL, strongest first) \
                 without suites later removed; NPN only, so no ALPN",
    },
    ServerProfile {
        name: "tls12-cbc-only",
        aliases: &[],
        min: "1.2",
        max: "1.2",
        tls12_suites: &[
            "ECDHE-ECDSA-AES128-SHA",
            "ECDHE-RSA-AES128-SHA",
            "ECDHE-ECDSA-AES256-SHA",
            "ECDHE-RSA-AES256-SHA",
            "ECDHE-ECDSA-AES128-SHA256",
            "ECDHE-RSA-AES128-SHA256",
            "AES128-SHA",
            "AES256-SHA",
        ],
        groups: None,
        alpn: true,
        stacks: OPENSSL,
        source: "a misconfigured server: only suites on RFC 7540 Appendix A",
    },
    ServerProfile {
        name: "tls13-only",
        aliases: &[],
        min: "1.3",
        max: "1.3",
        tls12_suites: &[],
        groups: None,
        alpn: true,
        stacks: BOTH,
        source: "modern hardening: TLS 1.3 only",
    },
];

/// A client TLS profile.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ClientProfile {
    /// Name on the command line and in scenario files.
    pub name: &'static str,
    /// Lowest TLS version offered.
    pub min: &'static str,
    /// Highest TLS version offered.
    pub max: &'static str,
    /// TLS 1.2 suites in client preference order (OpenSSL names); `None` = the stack's
    /// default (rustls: ECDHE + AEAD only).
    pub tls12_suites: Option<&'static [&'static str]>,
    /// The stack that can express the profile.
    pub stack: Stack,
    /// Where the row comes from.
    pub source: &'static str,
}

/// OpenSSL 3.0's DEFAULT list for TLS 1.2 (`openssl ciphers -s -tls1_2 DEFAULT`).
pub const OPENSSL_DEFAULT_TLS12: &[&str] = &[
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES256-SHA384",
    "DHE-RSA-AES256-SHA256",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES128-SHA256",
    "DHE-RSA-AES128-SHA256",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "DHE-RSA-AES256-SHA",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "DHE-RSA-AES128-SHA",
    "AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
    "AES256-SHA256",
    "AES128-SHA256",
    "AES256-SHA",
    "AES128-SHA",
];

/// Every client profile.
pub const CLIENT_PROFILES: &[ClientProfile] = &[
    ClientProfile {
        name: "browser",
        min: "1.2",
        max: "1.3",
        tls12_suites: Some(&[
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "ECDHE-RSA-CHACHA20-POLY1305",
            "ECDHE-RSA-AES128-SHA",
            "ECDHE-RSA-AES256-SHA",
            "AES128-GCM-SHA256",
            "AES256-GCM-SHA384",
            "AES128-SHA",
            "AES256-SHA",
        ]),
        stack: Stack::Openssl,
        source: "Chrome's TLS 1.2 list: ECDHE + AEAD first, legacy ECDHE-RSA CBC-SHA and RSA \
                 key exchange kept, no finite-field DHE",
    },
    ClientProfile {
        name: "openssl-default",
        min: "1.2",
        max: "1.3",
        tls12_suites: Some(OPENSSL_DEFAULT_TLS12),
        stack: Stack::Openssl,
        source: "OpenSSL 3.0 DEFAULT (Debian 12), TLS 1.2-1.3",
    },
    ClientProfile {
        name: "legacy",
        min: "1.2",
        max: "1.2",
        tls12_suites: Some(&[
            "DHE-RSA-AES128-GCM-SHA256",
            "DHE-RSA-AES256-GCM-SHA384",
            "DHE-RSA-AES128-SHA",
            "DHE-RSA-AES256-SHA",
            "ECDHE-RSA-AES128-SHA",
            "ECDHE-RSA-AES256-SHA",
            "ECDHE-ECDSA-AES128-SHA",
            "ECDHE-ECDSA-AES256-SHA",
            "AES128-SHA",
            "AES256-SHA",
        ]),
        stack: Stack::Openssl,
        source: "an older client (Java 7 / Android 4.4 era): TLS 1.2 at most, DHE and CBC",
    },
    ClientProfile {
        name: "tls13-only",
        min: "1.3",
        max: "1.3",
        tls12_suites: None,
        stack: Stack::Rustls,
        source: "TLS 1.3 only",
    },
    ClientProfile {
        name: "rustls-default",
        min: "1.2",
        max: "1.3",
        tls12_suites: None,
        stack: Stack::Rustls,
        source: "rustls defaults: ECDHE + AEAD only (the reference's \"AEAD-only ECDHE\" client)",
    },
];

/// The TLS 1.2 suites rustls's ring provider offers by default, in its order (OpenSSL names).
pub const RUSTLS_TLS12: &[&str] = &[
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

/// TLS 1.2 suites the profiles use: OpenSSL name and IANA code point.
pub const SUITES: &[(&str, u16)] = &[
    ("ECDHE-ECDSA-AES256-GCM-SHA384", 0xC02C),
    ("ECDHE-RSA-AES256-GCM-SHA384", 0xC030),
    ("DHE-RSA-AES256-GCM-SHA384", 0x009F),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", 0xCCA9),
    ("ECDHE-RSA-CHACHA20-POLY1305", 0xCCA8),
    ("DHE-RSA-CHACHA20-POLY1305", 0xCCAA),
    ("ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02B),
    ("ECDHE-RSA-AES128-GCM-SHA256", 0xC02F),
    ("DHE-RSA-AES128-GCM-SHA256", 0x009E),
    ("ECDHE-ECDSA-AES256-SHA384", 0xC024),
    ("ECDHE-RSA-AES256-SHA384", 0xC028),
    ("DHE-RSA-AES256-SHA256", 0x006B),
    ("ECDHE-ECDSA-AES128-SHA256", 0xC023),
    ("ECDHE-RSA-AES128-SHA256", 0xC027),
    ("DHE-RSA-AES128-SHA256", 0x0067),
    ("ECDHE-ECDSA-AES256-SHA", 0xC00A),
    ("ECDHE-RSA-AES256-SHA", 0xC014),
    ("DHE-RSA-AES256-SHA", 0x0039),
    ("ECDHE-ECDSA-AES128-SHA", 0xC009),
    ("ECDHE-RSA-AES128-SHA", 0xC013),
    ("DHE-RSA-AES128-SHA", 0x0033),
    ("AES256-GCM-SHA384", 0x009D),
    ("AES128-GCM-SHA256", 0x009C),
    ("AES256-SHA256", 0x003D),
    ("AES128-SHA256", 0x003C),
    ("AES256-SHA", 0x0035),
    ("AES128-SHA", 0x002F),
];

/// Certificate key a TLS 1.2 suite needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// RSA certificate.
    Rsa,
    /// ECDSA certificate.
    Ecdsa,
}

/// The certificate key type a TLS 1.2 suite (OpenSSL name) authenticates with.
pub fn suite_auth(openssl_name: &str) -> Auth {
    if openssl_name.starts_with("ECDHE-ECDSA-") {
        Auth::Ecdsa
    } else {
        Auth::Rsa
    }
}

/// IANA code point of a TLS 1.2 suite named the OpenSSL way.
pub fn suite_code(openssl_name: &str) -> Option<u16> {
    SUITES
        .iter()
        .find(|(n, _)| *n == openssl_name)
        .map(|&(_, c)| c)
}

/// Whether a TLS 1.2 suite is on RFC 7540 Appendix A (an HTTP/2 peer may answer
/// INADEQUATE_SECURITY).
pub fn on_appendix_a(code: u16) -> bool {
    APPENDIX_A.iter().any(|&(c, _)| c == code)
}

/// The server profile called `name` (or one of its aliases).
pub fn server_profile(name: &str) -> Option<&'static ServerProfile> {
    SERVER_PROFILES
        .iter()
        .find(|p| p.name == name || p.aliases.contains(&name))
}

/// The client profile called `name`.
pub fn client_profile(name: &str) -> Option<&'static ClientProfile> {
    CLIENT_PROFILES.iter().find(|p| p.name == name)
}

/// Names of every server profile, for error messages.
pub fn server_profile_names() -> String {
    SERVER_PROFILES
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names of every client profile, for error messages.
pub fn client_profile_names() -> String {
    CLIENT_PROFILES
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ssl::{Ssl, SslContext, SslMethod};

    /// OpenSSL itself names every code point in [`SUITES`] as the table does, and accepts
    /// every profile's list.
    #[test]
    fn suite_table_agrees_with_openssl() {
        let mut b = SslContext::builder(SslMethod::tls()).unwrap();
        b.set_cipher_list("ALL:@SECLEVEL=0").unwrap();
        let ctx = b.build();
        let ssl = Ssl::new(&ctx).unwrap();
        for &(name, code) in SUITES {
            let list = ssl
                .bytes_to_cipher_list(&code.to_be_bytes(), false)
                .unwrap();
            let got: Vec<&str> = list.suites.iter().map(|c| c.name()).collect();
            assert_eq!(got, [name], "code {code:#06x}");
        }
        let lists = SERVER_PROFILES
            .iter()
            .map(|p| p.tls12_suites)
            .chain(CLIENT_PROFILES.iter().filter_map(|p| p.tls12_suites))
            .chain([RUSTLS_TLS12]);
        for list in lists {
            for s in list {
                assert!(suite_code(s).is_some(), "{s} missing from SUITES");
            }
        }
    }

    #[test]
    fn appendix_a_classifies_cbc_and_static_rsa_but_not_ephemeral_aead() {
        let bad = |n: &str| on_appendix_a(suite_code(n).unwrap());
        assert!(bad("ECDHE-RSA-AES256-SHA384"));
        assert!(bad("ECDHE-RSA-AES128-SHA"));
        assert!(bad("AES128-GCM-SHA256"));
        assert!(!bad("ECDHE-ECDSA-AES256-GCM-SHA384"));
        assert!(!bad("DHE-RSA-AES128-GCM-SHA256"));
        assert!(!bad("ECDHE-RSA-CHACHA20-POLY1305"));
        for name in server_profile("tls12-cbc-only").unwrap().tls12_suites {
            assert!(
                bad(name),
                "{name} is in tls12-cbc-only but not on Appendix A"
            );
        }
    }

    #[test]
    fn profiles_are_found_by_name_and_alias() {
        assert_eq!(
            server_profile("linux-openssl-1.0.2+").unwrap().name,
            "modern"
        );
        assert!(!server_profile("openssl-1.0.1").unwrap().alpn);
        assert!(client_profile("browser").is_some());
        assert!(server_profile("windows-95").is_none());
    }
}

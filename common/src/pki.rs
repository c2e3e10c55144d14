//! A fresh PKI per run: one CA and a leaf for the loopback names, with RSA or ECDSA keys.
//!
//! rcgen builds the certificates; RSA keys come from OpenSSL because rcgen's ring backend
//! cannot generate them.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Key algorithm of a generated certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// RSA 2048-bit, signed with SHA-256.
    Rsa,
    /// ECDSA on P-256, signed with SHA-256.
    Ecdsa,
}

impl KeyType {
    /// The lower-case name used on command lines and in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ecdsa => "ecdsa",
        }
    }
}

impl std::str::FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rsa" => Ok(KeyType::Rsa),
            "ecdsa" => Ok(KeyType::Ecdsa),
            other => Err(format!(
                "unknown key type `{other}` (expected rsa or ecdsa)"
            )),
        }
    }
}

/// Why a PKI could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Key generation or certificate signing failed.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// OpenSSL failed to generate an RSA key.
    #[error("RSA key generation failed: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
    /// Writing a PEM file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

/// A CA and one leaf certificate it signed, all PEM-encoded.
#[derive(Debug, Clone)]
pub struct Pki {
    /// Key type of both the CA and the leaf.
    pub key_type: KeyType,
    /// The CA certificate clients trust.
    pub ca_cert_pem: String,
    /// The leaf certificate followed by the CA certificate (the chain a server sends).
    pub chain_pem: String,
    /// The leaf's private key (PKCS#8).
    pub key_pem: String,
}

/// Paths of a PKI written to disk.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    /// CA certificate PEM.
    pub ca: PathBuf,
    /// Leaf + CA chain PEM.
    pub chain: PathBuf,
    /// Leaf private key PEM.
    pub key: PathBuf,
}

/// Names every leaf is valid for: the loopback host name and addresses.
const LEAF_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

fn new_key(key_type: KeyType) -> Result<KeyPair, PkiError> {
    match key_type {
        KeyType::Ecdsa => Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?),
        KeyType::Rsa => {
            let rsa = openssl::rsa::Rsa::generate(2048)?;
            let pem = openssl::pkey::PKey::from_rsa(rsa)?.private_key_to_pem_pkcs8()?;
            let pem = String::from_utf8_lossy(&pem);
            Ok(KeyPair::from_pkcs8_pem_and_sign_algo(
                &pem,
                &rcgen::PKCS_RSA_SHA256,
            )?)
        }
    }
}

impl Pki {
    /// Generates a CA and a leaf for `localhost`, `127.0.0.1` and `::1`.
    pub fn generate(key_type: KeyType) -> Result<Pki, PkiError> {
        let ca_key = new_key(key_type)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("h2lab test CA ({})", key_type.as_str()),
        );
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key)?;

        let leaf_key = new_key(key_type)?;
        let mut leaf_params = CertificateParams::new(Vec::<String>::new())?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.subject_alt_names = LEAF_NAMES
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName((*n).try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if key_type == KeyType::Rsa {
            leaf_params
                .key_usages
                .push(KeyUsagePurpose::KeyEncipherment);
        }
        let leaf = leaf_params.signed_by(&leaf_key, &ca_cert, &ca_key)?;

        let ca_cert_pem = ca_cert.pem();
        Ok(Pki {
            key_type,
            chain_pem: format!("{}{}", leaf.pem(), ca_cert_pem),
            ca_cert_pem,
            key_pem: leaf_key.serialize_pem(),
        })
    }

    /// Writes `<prefix>-ca.pem`, `<prefix>-chain.pem` and `<prefix>-key.pem` into `dir`.
    pub fn write_to(&self, dir: &Path, prefix: &str) -> Result<PkiFiles, PkiError> {
        let files = PkiFiles {
            ca: dir.join(format!("{prefix}-ca.pem")),
            chain: dir.join(format!("{prefix}-chain.pem")),
            key: dir.join(format!("{prefix}-key.pem")),
        };
        for (path, text) in [
            (&files.ca, &self.ca_cert_pem),
            (&files.chain, &self.chain_pem),
            (&files.key, &self.key_pem),
        ] {
            std::fs::write(path, text).map_err(|source| PkiError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_is_signed_by_ca_for_both_key_types() {
        for kt in [KeyType::Rsa, KeyType::Ecdsa] {
            let pki = Pki::generate(kt).unwrap();
            let chain = openssl::x509::X509::stack_from_pem(pki.chain_pem.as_bytes()).unwrap();
            let ca = openssl::x509::X509::from_pem(pki.ca_cert_pem.as_bytes()).unwrap();
            assert_eq!(chain.len(), 2);
            assert!(chain[0].verify(&ca.public_key().unwrap()).unwrap());
            let key = openssl::pkey::PKey::private_key_from_pem(pki.key_pem.as_bytes()).unwrap();
            assert!(chain[0].public_key().unwrap().public_eq(&key));
            let expected = match kt {
                KeyType::Rsa => openssl::pkey::Id::RSA,
                KeyType::Ecdsa => openssl::pkey::Id::EC,
            };
            assert_eq!(key.id(), expected);
        }
    }
}

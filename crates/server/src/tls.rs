//! TLS with rustls: a certificate and key from PEM files, or a self-signed
//! certificate made at start (its key never touches the disk) for a quick
//! start on a network. With TLS the session cookie is `Secure` and named
//! `__Host-oathdesk`, and answers carry HSTS.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Where the certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    /// PEM files: the certificate chain (leaf first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate for these names and addresses.
    SelfSigned { names: Vec<String> },
}

/// A ready server configuration and what to tell the user about it.
pub struct Prepared {
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate, `AB:CD:…`, to compare with what the
    /// browser shows for a self-signed certificate.
    pub fingerprint: String,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls configuration (HTTP/1.1, TLS 1.2 and 1.3).
pub fn prepare(tls: &Tls) -> Result<Prepared, String> {
    let (chain, key) = match tls {
        Tls::Files { cert, key } => read_files(cert, key)?,
        Tls::SelfSigned { names } => self_signed(names)?,
    };
    let fingerprint = chain
        .first()
        .map(|leaf| {
            Sha256::digest(leaf.as_ref())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default();
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS: the certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Prepared {
        config: Arc::new(config),
        fingerprint,
    })
}

type Pair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn read_files(cert: &Path, key: &Path) -> Result<Pair, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate (expected PEM '-----BEGIN CERTIFICATE-----')",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "--tls-key {}: no private key in PEM ({e}); give the key of the certificate",
            key.display()
        )
    })?;
    Ok((chain, key))
}

fn self_signed(names: &[String]) -> Result<Pair, String> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| format!("self-signed certificate: {e}"))?;
    for name in names {
        params.subject_alt_names.push(match name.parse::<IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(
                name.clone()
                    .try_into()
                    .map_err(|e| format!("self-signed certificate: '{name}': {e}"))?,
            ),
        });
    }
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "oathdesk console (self-signed)");
    let key = rcgen::KeyPair::generate().map_err(|e| format!("self-signed certificate: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("self-signed certificate: {e}"))?;
    let key_der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| format!("self-signed certificate: {e}"))?;
    Ok((vec![cert.der().clone()], key_der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_covers_its_names() {
        let prepared = prepare(&Tls::SelfSigned {
            names: vec!["localhost".into(), "127.0.0.1".into()],
        })
        .unwrap();
        assert_eq!(prepared.fingerprint.len(), 32 * 3 - 1);
        assert_eq!(prepared.config.alpn_protocols, [b"http/1.1".to_vec()]);
        // Two starts, two keys.
        let again = prepare(&Tls::SelfSigned {
            names: vec!["localhost".into()],
        })
        .unwrap();
        assert_ne!(prepared.fingerprint, again.fingerprint);
    }

    #[test]
    fn missing_or_mismatched_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let error = prepare(&Tls::Files {
            cert: cert.clone(),
            key: key.clone(),
        })
        .err()
        .unwrap();
        assert!(error.contains("--tls-cert"), "{error}");
        // A certificate with another certificate's key.
        let one = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["b.example".into()]).unwrap();
        std::fs::write(&cert, one.cert.pem()).unwrap();
        std::fs::write(&key, two.signing_key.serialize_pem()).unwrap();
        let error = prepare(&Tls::Files {
            cert: cert.clone(),
            key: key.clone(),
        })
        .err()
        .unwrap();
        assert!(error.contains("do not go together"), "{error}");
        std::fs::write(&key, one.signing_key.serialize_pem()).unwrap();
        assert!(prepare(&Tls::Files { cert, key }).is_ok());
    }
}

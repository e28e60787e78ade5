//! Certificate credentials: the signed client assertion.
//!
//! Instead of a shared secret, an app registration can hold the public part
//! of a certificate. The app then proves itself with a JWT it signs with the
//! private key (RS256), naming the certificate by its SHA-1 thumbprint in
//! the `x5t` header, addressed (`aud`) to the token endpoint, issued by and
//! about (`iss`, `sub`) the client id, valid for ten minutes, with a unique
//! `jti`. The signature is made by the `jsonwebtoken` crate (ring).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use sha1::Digest;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A certificate and its RSA private key, ready to sign assertions.
pub struct CertificateCredential {
    key: EncodingKey,
    /// Base64url SHA-1 of the certificate's DER (the `x5t` header).
    x5t: String,
    /// Hex SHA-1, as the Entra admin center shows a certificate.
    thumbprint: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

impl CertificateCredential {
    /// Reads a PEM text holding the certificate (`BEGIN CERTIFICATE`) and
    /// its private key (`BEGIN PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`), in
    /// either order — the layout Azure tools write.
    pub fn from_pem(text: &str) -> Result<CertificateCredential> {
        let blocks = pem::parse_many(text.as_bytes())
            .map_err(|e| Error::Config(format!("the certificate file is not PEM: {e}")))?;
        let certificate = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or_else(|| {
                Error::Config(
                    "the certificate file has no '-----BEGIN CERTIFICATE-----' block".into(),
                )
            })?;
        let key_block = blocks
            .iter()
            .find(|b| matches!(b.tag(), "PRIVATE KEY" | "RSA PRIVATE KEY"))
            .ok_or_else(|| {
                Error::Config(
                    "the certificate file has no RSA private key ('-----BEGIN PRIVATE KEY-----'); \
                     put the key in the same PEM file as the certificate"
                        .into(),
                )
            })?;
        let key_pem = Zeroizing::new(pem::encode(key_block));
        let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).map_err(|e| {
            Error::Config(format!(
                "the private key in the certificate file is not a usable RSA key ({e}); Entra takes RS256"
            ))
        })?;
        let digest = sha1::Sha1::digest(certificate.contents());
        Ok(CertificateCredential {
            key,
            x5t: data_encoding::BASE64URL_NOPAD.encode(&digest),
            thumbprint: data_encoding::HEXUPPER.encode(&digest),
        })
    }

    /// The certificate's SHA-1 thumbprint in hex, as Entra lists it.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A client assertion for `client_id` at `token_url`, valid ten minutes.
    pub fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now: u64,
    ) -> Result<Zeroizing<String>> {
        let mut header = Header::new(Algorithm::RS256);
        header.x5t = Some(self.x5t.clone());
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti)
            .map_err(|e| Error::Config(format!("the system's random generator failed: {e}")))?;
        let claims = Claims {
            aud: token_url,
            iss: client_id,
            sub: client_id,
            jti: data_encoding::HEXLOWER.encode(&jti),
            nbf: now,
            iat: now,
            exp: now + 600,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(Zeroizing::new)
            .map_err(|e| Error::Config(format!("cannot sign the client assertion: {e}")))
    }
}

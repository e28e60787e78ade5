//! Google Authenticator exports: `otpauth-migration://offline?data=…`.
//!
//! `data` is Base64 of a protobuf `MigrationPayload` (schema below, as used
//! by Aegis and extract_otp_secrets). An export of many accounts is split
//! over several QR codes, each a payload with the same `batch_id`, its own
//! `batch_index` and the common `batch_size`.
//!
//! The format has no period field: every TOTP entry is a 30-second one, and
//! a credential with another period or a start time cannot be written.

use prost::Message;
use zeroize::Zeroizing;

use crate::credential::{Credential, Kind};
use crate::params::{Algorithm, Digits, TimeStep};
use crate::secret::Secret;
use crate::text::strip_prefix_ignore_case;

/// The wire schema.
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MigrationPayload {
        #[prost(message, repeated, tag = "1")]
        pub otp_parameters: Vec<OtpParameters>,
        #[prost(int32, tag = "2")]
        pub version: i32,
        #[prost(int32, tag = "3")]
        pub batch_size: i32,
        #[prost(int32, tag = "4")]
        pub batch_index: i32,
        #[prost(int32, tag = "5")]
        pub batch_id: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OtpParameters {
        #[prost(bytes = "vec", tag = "1")]
        pub secret: Vec<u8>,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(string, tag = "3")]
        pub issuer: String,
        /// 0 unspecified, 1 SHA1, 2 SHA256, 3 SHA512, 4 MD5.
        #[prost(int32, tag = "4")]
        pub algorithm: i32,
        /// 0 unspecified, 1 six, 2 eight.
        #[prost(int32, tag = "5")]
        pub digits: i32,
        /// 0 unspecified, 1 HOTP, 2 TOTP.
        #[prost(int32, tag = "6")]
        pub r#type: i32,
        #[prost(int64, tag = "7")]
        pub counter: i64,
    }

    impl Drop for OtpParameters {
        fn drop(&mut self) {
            zeroize::Zeroize::zeroize(&mut self.secret);
        }
    }
}

/// One decoded export QR code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationBatch {
    /// The accounts, in export order.
    pub credentials: Vec<Credential>,
    /// Payload format version (1 today).
    pub version: i32,
    /// How many QR codes the whole export has.
    pub batch_size: i32,
    /// Which of them this is, from 0.
    pub batch_index: i32,
    /// Ties the QR codes of one export together.
    pub batch_id: i32,
}

/// Why a migration link could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "not a Google Authenticator export: it must start with otpauth-migration://offline?data="
    )]
    Scheme,
    #[error("the export link has no data= parameter")]
    MissingData,
    #[error(
        "the export's data= is not valid Base64 (was the link cut short or re-encoded when copied?)"
    )]
    Base64,
    #[error("the export's data= is not a Google Authenticator payload: {0}")]
    Protobuf(String),
    #[error("entry {entry} of the export: {problem}")]
    Entry { entry: usize, problem: String },
    #[error(
        "entry {entry}: a Google Authenticator export can only carry {what}; \
         export this credential as an otpauth URI instead"
    )]
    Unrepresentable { entry: usize, what: &'static str },
}

/// Reads an `otpauth-migration://offline?data=…` link.
pub fn parse(link: &str) -> Result<MigrationBatch, MigrationError> {
    let link = link.trim();
    let rest =
        strip_prefix_ignore_case(link, "otpauth-migration://").ok_or(MigrationError::Scheme)?;
    let (_, query) = rest.split_once('?').ok_or(MigrationError::MissingData)?;
    let raw = query
        .split('&')
        .find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            key.eq_ignore_ascii_case("data").then_some(value)
        })
        .ok_or(MigrationError::MissingData)?;
    // Percent-decode only: a literal '+' in Base64 is a '+', not a space,
    // whatever form encoding would say.
    let text = Zeroizing::new(
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| MigrationError::Base64)?
            .replace(' ', "+"),
    );
    let bytes = Secret::from_base64(&text).map_err(|_| MigrationError::Base64)?;
    decode_payload(bytes.as_bytes())
}

/// Decodes the protobuf bytes of a payload.
pub fn decode_payload(bytes: &[u8]) -> Result<MigrationBatch, MigrationError> {
    let payload = proto::MigrationPayload::decode(bytes)
        .map_err(|e| MigrationError::Protobuf(e.to_string()))?;
    let credentials = payload
        .otp_parameters
        .iter()
        .enumerate()
        .map(|(index, entry)| from_entry(index + 1, entry))
        .collect::<Result<_, _>>()?;
    Ok(MigrationBatch {
        credentials,
        version: payload.version,
        batch_size: payload.batch_size,
        batch_index: payload.batch_index,
        batch_id: payload.batch_id,
    })
}

fn from_entry(entry: usize, p: &proto::OtpParameters) -> Result<Credential, MigrationError> {
    let problem = |problem: String| MigrationError::Entry { entry, problem };
    if p.secret.is_empty() {
        return Err(problem("the secret is empty".into()));
    }
    let algorithm = match p.algorithm {
        0 | 1 => Algorithm::Sha1,
        2 => Algorithm::Sha256,
        3 => Algorithm::Sha512,
        4 => return Err(problem("MD5 codes are not supported".into())),
        other => return Err(problem(format!("unknown algorithm number {other}"))),
    };
    let digits = match p.digits {
        0 | 1 => Digits::SIX,
        2 => Digits::EIGHT,
        other => return Err(problem(format!("unknown digit-count number {other}"))),
    };
    let kind = match p.r#type {
        1 => Kind::Hotp {
            counter: u64::try_from(p.counter)
                .map_err(|_| problem(format!("negative counter {}", p.counter)))?,
        },
        // Unspecified is read as TOTP, as Google Authenticator writes it.
        0 | 2 => Kind::Totp {
            step: TimeStep::DEFAULT,
        },
        other => return Err(problem(format!("unknown OTP type number {other}"))),
    };
    // `name` is "issuer:account" or just "account".
    let (label_issuer, account) = match p.name.split_once(':') {
        Some((prefix, account)) => (Some(prefix.trim().to_owned()), account.trim().to_owned()),
        None => (None, p.name.trim().to_owned()),
    };
    let issuer = Some(p.issuer.trim().to_owned());
    let (issuer, label_issuer) = crate::credential::settle_issuers(issuer, label_issuer);
    Ok(Credential {
        secret: Secret::from_bytes(p.secret.clone()),
        kind,
        algorithm,
        digits,
        issuer,
        account,
        label_issuer,
    })
}

/// Writes credentials as one export link.
pub fn format(batch: &MigrationBatch) -> Result<String, MigrationError> {
    let bytes = Zeroizing::new(encode_payload(batch)?);
    let data = Zeroizing::new(data_encoding::BASE64.encode(&bytes));
    let escaped: String =
        percent_encoding::utf8_percent_encode(&data, percent_encoding::NON_ALPHANUMERIC).collect();
    Ok(format!("otpauth-migration://offline?data={escaped}"))
}

/// The protobuf bytes of a payload.
pub fn encode_payload(batch: &MigrationBatch) -> Result<Vec<u8>, MigrationError> {
    let otp_parameters = batch
        .credentials
        .iter()
        .enumerate()
        .map(|(index, c)| to_entry(index + 1, c))
        .collect::<Result<_, _>>()?;
    let payload = proto::MigrationPayload {
        otp_parameters,
        version: batch.version,
        batch_size: batch.batch_size,
        batch_index: batch.batch_index,
        batch_id: batch.batch_id,
    };
    Ok(payload.encode_to_vec())
}

fn to_entry(entry: usize, c: &Credential) -> Result<proto::OtpParameters, MigrationError> {
    let unrepresentable = |what| MigrationError::Unrepresentable { entry, what };
    let digits = match c.digits.get() {
        6 => 1,
        8 => 2,
        _ => return Err(unrepresentable("6- or 8-digit codes")),
    };
    let (r#type, counter) = match c.kind {
        Kind::Hotp { counter } => (
            1,
            i64::try_from(counter).map_err(|_| unrepresentable("counters below 2^63"))?,
        ),
        Kind::Totp { step } if step == TimeStep::DEFAULT => (2, 0),
        Kind::Totp { .. } => return Err(unrepresentable("30-second TOTP starting at T0 = 0")),
    };
    let prefix = c.label_issuer.as_ref().or(c.issuer.as_ref());
    let name = match prefix {
        Some(prefix) if prefix.contains(':') => {
            return Err(unrepresentable("issuers without ':' in the account name"));
        }
        Some(prefix) => format!("{prefix}:{}", c.account),
        // Readers split the name at the first ':'; an empty issuer prefix
        // keeps such an account whole.
        None if c.account.contains(':') => format!(":{}", c.account),
        None => c.account.clone(),
    };
    Ok(proto::OtpParameters {
        secret: c.secret.as_bytes().to_vec(),
        name,
        issuer: c.issuer.clone().unwrap_or_default(),
        algorithm: match c.algorithm {
            Algorithm::Sha1 => 1,
            Algorithm::Sha256 => 2,
            Algorithm::Sha512 => 3,
        },
        digits,
        r#type,
        counter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIM13: &str = "otpauth-migration://offline?data=CjEKCkhlbGxvId6tvu8SGEV4YW1wbGU6YWxpY2VAZ29vZ2xlLmNvbRoHRXhhbXBsZTAC";

    #[test]
    fn dim13_example_decodes() {
        let batch = parse(DIM13).unwrap();
        assert_eq!(batch.credentials.len(), 1);
        let c = &batch.credentials[0];
        assert_eq!(c.secret.to_base32().as_str(), "JBSWY3DPEHPK3PXP");
        assert_eq!(c.issuer.as_deref(), Some("Example"));
        assert_eq!(c.account, "alice@google.com");
        assert_eq!(
            crate::uri::format(c).unwrap(),
            "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example"
        );
    }

    #[test]
    fn round_trip_with_batches() {
        let mut hotp = Credential::totp(Secret::from_bytes(b"12345678901234567890".to_vec()));
        hotp.kind = Kind::Hotp { counter: 7 };
        hotp.algorithm = Algorithm::Sha256;
        hotp.digits = Digits::EIGHT;
        hotp.account = "bob".into();
        let mut totp = Credential::totp(Secret::from_bytes(vec![0xff; 10]));
        totp.issuer = Some("Microsoft".into());
        totp.label_issuer = Some("Contoso Ltd".into());
        totp.account = "alice@contoso.com".into();
        let batch = MigrationBatch {
            credentials: vec![hotp, totp],
            version: 1,
            batch_size: 3,
            batch_index: 2,
            batch_id: -12345,
        };
        let link = format(&batch).unwrap();
        assert_eq!(parse(&link).unwrap(), batch);
    }

    #[test]
    fn refuses_what_it_cannot_carry_and_bad_input() {
        let mut c = Credential::totp(Secret::from_bytes(vec![1; 10]));
        c.kind = Kind::Totp {
            step: TimeStep::new(60, 0).unwrap(),
        };
        let batch = MigrationBatch {
            credentials: vec![c],
            version: 1,
            batch_size: 1,
            batch_index: 0,
            batch_id: 0,
        };
        assert!(matches!(
            format(&batch),
            Err(MigrationError::Unrepresentable { entry: 1, .. })
        ));
        assert_eq!(parse("otpauth://totp/x"), Err(MigrationError::Scheme));
        assert_eq!(
            parse("otpauth-migration://offline?foo=1"),
            Err(MigrationError::MissingData)
        );
        assert_eq!(
            parse("otpauth-migration://offline?data=***"),
            Err(MigrationError::Base64)
        );
        assert!(matches!(
            parse("otpauth-migration://offline?data=/w"),
            Err(MigrationError::Protobuf(_))
        ));
    }
}

//! Shared secrets (OTP seeds) and the text encodings they travel in.
//!
//! A [`Secret`] owns its bytes, wipes them when dropped, compares in constant
//! time and never shows them in `Debug` output. Parsing is deliberately
//! lenient about cosmetics (case, spaces, hyphens, `=` padding, non-zero
//! trailing bits in Base32) because real seed files are written by many
//! tools, and strict about substance: a character that is not part of the
//! alphabet is an error that says where it is, never what it is.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A shared secret: the raw key bytes of an HOTP/TOTP credential.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret {
    bytes: Vec<u8>,
}

/// The text encodings a secret is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// RFC 4648 Base32, the encoding of otpauth URIs and most admin tools.
    Base32,
    /// Hexadecimal, as in oathtool, PSKC tooling and the privacyIDEA CSV.
    Hex,
    /// Standard or URL-safe Base64, padded or not.
    Base64,
}

impl Encoding {
    /// The lower-case name used on command lines and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Base32 => "base32",
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
        }
    }
}

impl std::str::FromStr for Encoding {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "base32" | "b32" => Ok(Encoding::Base32),
            "hex" | "base16" => Ok(Encoding::Hex),
            "base64" | "b64" => Ok(Encoding::Base64),
            _ => Err(SecretError::UnknownEncoding),
        }
    }
}

/// What kind of character sits at a bad position. Errors report the class,
/// not the character, so that no part of a secret ends up in a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CharClass {
    /// `0`, `1`, `8` or `9`: digits that Base32 does not use (a hex secret?).
    DigitNotInBase32,
    /// Any other ASCII letter or digit the alphabet lacks.
    OtherAlphanumeric,
    /// Punctuation or a symbol.
    Symbol,
    /// Whitespace or a control character.
    Control,
    /// A character outside ASCII (a smart quote pasted from a document?).
    NonAscii,
}

impl CharClass {
    fn of(c: char) -> CharClass {
        match c {
            '0' | '1' | '8' | '9' => CharClass::DigitNotInBase32,
            c if c.is_ascii_alphanumeric() => CharClass::OtherAlphanumeric,
            c if c.is_ascii_punctuation() => CharClass::Symbol,
            c if c.is_ascii() => CharClass::Control,
            _ => CharClass::NonAscii,
        }
    }
}

impl fmt::Display for CharClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CharClass::DigitNotInBase32 => "a digit 0, 1, 8 or 9",
            CharClass::OtherAlphanumeric => "a letter or digit outside the alphabet",
            CharClass::Symbol => "a punctuation mark or symbol",
            CharClass::Control => "a control character",
            CharClass::NonAscii => "a non-ASCII character",
        })
    }
}

/// Why a secret could not be read. Messages name the position and the kind
/// of problem; they never quote the secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret is empty")]
    Empty,
    #[error(
        "character {position} of the Base32 secret is {class}; Base32 uses only A-Z and 2-7{}",
        if *.class == CharClass::DigitNotInBase32 { " (is the secret hex?)" } else { "" }
    )]
    Base32Character { position: usize, class: CharClass },
    #[error(
        "a Base32 secret cannot be {chars} characters long (characters are missing or extra: \
         valid lengths leave a remainder of 0, 2, 4, 5 or 7 when divided by 8)"
    )]
    Base32Length { chars: usize },
    #[error(
        "'=' padding may only appear at the end of a Base32 secret (found at character {position})"
    )]
    Base32Padding { position: usize },
    #[error(
        "the secret looks like hex (it has only the characters 0-9 and A-F), so it is not \
         read as Base32 without being told"
    )]
    LooksLikeHex,
    #[error("character {position} of the hex secret is {class}; hex uses only 0-9 and A-F")]
    HexCharacter { position: usize, class: CharClass },
    #[error("a hex secret needs an even number of digits (two per byte); this one has {digits}")]
    HexOddLength { digits: usize },
    #[error("the secret is not valid Base64 (standard or URL-safe alphabet, padded or not)")]
    Base64,
    #[error("unknown encoding: use base32, hex or base64")]
    UnknownEncoding,
}

impl Secret {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret {
            bytes: bytes.into(),
        }
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of key bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when the secret has no bytes (never the case for parsed secrets).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Decodes `text` in the given encoding.
    pub fn decode(text: &str, encoding: Encoding) -> Result<Secret, SecretError> {
        match encoding {
            Encoding::Base32 => Secret::from_base32(text),
            Encoding::Hex => Secret::from_hex(text),
            Encoding::Base64 => Secret::from_base64(text),
        }
    }

    /// Reads a secret typed by a person who did not say which encoding it is
    /// in: Base32, unless the text is made only of hex digits, which is
    /// refused with [`SecretError::LooksLikeHex`] rather than guessed.
    ///
    /// Hex made only of `2`-`7` and `A`-`F` also decodes as Base32, to
    /// different bytes: accepting it would silently produce wrong codes.
    pub fn from_unspecified(text: &str) -> Result<Secret, SecretError> {
        if looks_like_hex(text) {
            return Err(SecretError::LooksLikeHex);
        }
        Secret::from_base32(text)
    }

    /// Lenient Base32: any case; spaces, tabs and hyphens ignored; trailing
    /// `=` padding optional; non-zero trailing bits accepted (oathtool and
    /// Python do the same, and real secrets have them).
    pub fn from_base32(text: &str) -> Result<Secret, SecretError> {
        let mut symbols = Zeroizing::new(Vec::with_capacity(text.len()));
        let mut padding_at = None;
        for (index, c) in text.chars().enumerate() {
            let position = index + 1;
            match c {
                ' ' | '\t' | '-' | '\r' | '\n' => continue,
                '=' => {
                    padding_at.get_or_insert(position);
                    continue;
                }
                _ => {}
            }
            if let Some(first_pad) = padding_at {
                return Err(SecretError::Base32Padding {
                    position: first_pad,
                });
            }
            let upper = c.to_ascii_uppercase();
            let value = match upper {
                'A'..='Z' => upper as u8 - b'A',
                '2'..='7' => upper as u8 - b'2' + 26,
                _ => {
                    return Err(SecretError::Base32Character {
                        position,
                        class: CharClass::of(c),
                    });
                }
            };
            symbols.push(value);
        }
        if symbols.is_empty() {
            return Err(SecretError::Empty);
        }
        if matches!(symbols.len() % 8, 1 | 3 | 6) {
            return Err(SecretError::Base32Length {
                chars: symbols.len(),
            });
        }
        let mut bytes = Vec::with_capacity(symbols.len() * 5 / 8);
        let mut buffer: u64 = 0;
        let mut bits = 0u32;
        for &value in symbols.iter() {
            buffer = (buffer << 5) | u64::from(value);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((buffer >> bits) as u8);
            }
        }
        buffer.zeroize();
        Ok(Secret { bytes })
    }

    /// Hex, any case, with optional `0x` prefix and spaces, colons or
    /// hyphens between digits.
    pub fn from_hex(text: &str) -> Result<Secret, SecretError> {
        let trimmed = text.trim();
        let (skipped, body) = match trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
        {
            Some(rest) => (2, rest),
            None => (0, trimmed),
        };
        // Positions count characters, as in Base32 errors (not bytes: the
        // trimmed whitespace may be non-ASCII).
        let leading = text.chars().count() - text.trim_start().chars().count();
        let mut nibbles = Zeroizing::new(Vec::with_capacity(body.len()));
        for (index, c) in body.chars().enumerate() {
            match c {
                ' ' | '\t' | ':' | '-' => continue,
                _ => {}
            }
            let Some(value) = c.to_digit(16) else {
                return Err(SecretError::HexCharacter {
                    position: leading + skipped + index + 1,
                    class: CharClass::of(c),
                });
            };
            nibbles.push(value as u8);
        }
        if nibbles.is_empty() {
            return Err(SecretError::Empty);
        }
        if nibbles.len() % 2 != 0 {
            return Err(SecretError::HexOddLength {
                digits: nibbles.len(),
            });
        }
        let bytes = nibbles
            .chunks_exact(2)
            .map(|pair| (pair[0] << 4) | pair[1])
            .collect();
        Ok(Secret { bytes })
    }

    /// Base64 in the standard or URL-safe alphabet, padded or not;
    /// whitespace is ignored.
    pub fn from_base64(text: &str) -> Result<Secret, SecretError> {
        let compact: Zeroizing<String> =
            Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
        if compact.is_empty() {
            return Err(SecretError::Empty);
        }
        let unpadded = compact.trim_end_matches('=');
        let url_safe = unpadded.contains(['-', '_']);
        let engine = if url_safe {
            &data_encoding::BASE64URL_NOPAD
        } else {
            &data_encoding::BASE64_NOPAD
        };
        let bytes = engine
            .decode(unpadded.as_bytes())
            .map_err(|_| SecretError::Base64)?;
        if bytes.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret { bytes })
    }

    /// Encodes the secret; Base32 is upper case without padding (what otpauth
    /// URIs and Entra want), hex is lower case, Base64 is standard and padded.
    pub fn encode(&self, encoding: Encoding) -> Zeroizing<String> {
        Zeroizing::new(match encoding {
            Encoding::Base32 => data_encoding::BASE32_NOPAD.encode(&self.bytes),
            Encoding::Hex => data_encoding::HEXLOWER.encode(&self.bytes),
            Encoding::Base64 => data_encoding::BASE64.encode(&self.bytes),
        })
    }

    /// Shorthand for `encode(Encoding::Base32)`.
    pub fn to_base32(&self) -> Zeroizing<String> {
        self.encode(Encoding::Base32)
    }
}

/// True when `text` (ignoring spaces, hyphens and colons) is made only of
/// hex digits and is long enough to be a key: at least 16 digits, an even
/// number. Such text must not be read as Base32 without being told to.
pub fn looks_like_hex(text: &str) -> bool {
    let mut digits = 0usize;
    for c in text.chars() {
        match c {
            ' ' | '\t' | '-' | ':' => {}
            c if c.is_ascii_hexdigit() => digits += 1,
            _ => return false,
        }
    }
    digits >= 16 && digits.is_multiple_of(2)
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_KEY: &[u8] = b"12345678901234567890";

    #[test]
    fn base32_is_lenient_about_cosmetics() {
        let plain = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(plain.as_bytes(), RFC_KEY);
        for variant in [
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            "GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n",
        ] {
            assert_eq!(Secret::from_base32(variant).unwrap(), plain, "{variant}");
        }
        // Padding is optional, and a short final group is fine.
        let hello = Secret::from_base32("JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(hello.as_bytes(), b"Hello!\xde\xad\xbe\xef");
        assert_eq!(Secret::from_base32("MZXW6===").unwrap().as_bytes(), b"foo");
        assert_eq!(Secret::from_base32("MZXW6").unwrap().as_bytes(), b"foo");
    }

    #[test]
    fn base32_accepts_non_zero_trailing_bits() {
        // "...GR": the last symbol carries bits beyond the final byte.
        let lax = Secret::from_base32("JBSWY3DPEHPK3PXPGR").unwrap();
        let strict = Secret::from_base32("JBSWY3DPEHPK3PXPGQ").unwrap();
        assert_eq!(lax, strict);
        // 15 characters (75 bits) is a valid 9-byte secret.
        assert_eq!(Secret::from_base32("JBSWY3DPEHPK3PX").unwrap().len(), 9);
    }

    #[test]
    fn base32_errors_locate_the_problem_without_quoting_it() {
        let err = Secret::from_base32("JBSWY3D8EHPK3PXP").unwrap_err();
        assert_eq!(
            err,
            SecretError::Base32Character {
                position: 8,
                class: CharClass::DigitNotInBase32
            }
        );
        let message = err.to_string();
        assert!(message.contains("character 8"), "{message}");
        assert!(message.contains("hex"), "{message}");
        assert!(!message.contains("JBSW"), "{message}");
        assert_eq!(
            Secret::from_base32("JBSWY3DPE").unwrap_err(),
            SecretError::Base32Length { chars: 9 }
        );
        assert_eq!(
            Secret::from_base32("MZ=XW6").unwrap_err(),
            SecretError::Base32Padding { position: 3 }
        );
        assert_eq!(Secret::from_base32(" - ").unwrap_err(), SecretError::Empty);
        assert_eq!(
            Secret::from_base32("JBSWY3DP’HPK3PXP").unwrap_err(),
            SecretError::Base32Character {
                position: 9,
                class: CharClass::NonAscii
            }
        );
    }

    #[test]
    fn hex_and_base64_decode() {
        let hex = Secret::from_hex("3132333435363738393031323334353637383930").unwrap();
        assert_eq!(hex.as_bytes(), RFC_KEY);
        assert_eq!(
            Secret::from_hex("0x31:32 33-34").unwrap().as_bytes(),
            b"1234"
        );
        assert_eq!(
            Secret::from_hex("31323").unwrap_err(),
            SecretError::HexOddLength { digits: 5 }
        );
        assert_eq!(
            Secret::from_hex("31g2").unwrap_err(),
            SecretError::HexCharacter {
                position: 3,
                class: CharClass::OtherAlphanumeric
            }
        );
        let b64 = Secret::from_base64("MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=").unwrap();
        assert_eq!(b64.as_bytes(), RFC_KEY);
        assert_eq!(
            Secret::from_base64("MTIzNDU2Nzg5MDEyMzQ1Njc4OTA").unwrap(),
            b64
        );
        assert_eq!(
            Secret::from_base64("-_8").unwrap().as_bytes(),
            &[0xfb, 0xff]
        );
        assert_eq!(Secret::from_base64("!!").unwrap_err(), SecretError::Base64);
    }

    #[test]
    fn unspecified_refuses_hex_looking_text() {
        assert_eq!(
            Secret::from_unspecified("3132333435363738393031323334353637383930").unwrap_err(),
            SecretError::LooksLikeHex
        );
        // Hex that happens to use only Base32 symbols is still refused.
        assert_eq!(
            Secret::from_unspecified("deadbeefcafe2345").unwrap_err(),
            SecretError::LooksLikeHex
        );
        assert!(Secret::from_unspecified("JBSWY3DPEHPK3PXP").is_ok());
        // Short all-hex-letter Base32 words are not refused.
        assert!(Secret::from_unspecified("ABCD").is_ok());
    }

    #[test]
    fn encodings_round_trip() {
        let secret = Secret::from_bytes(RFC_KEY.to_vec());
        for encoding in [Encoding::Base32, Encoding::Hex, Encoding::Base64] {
            let text = secret.encode(encoding);
            assert_eq!(Secret::decode(&text, encoding).unwrap(), secret);
        }
        assert_eq!(
            secret.to_base32().as_str(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn debug_hides_the_bytes() {
        let secret = Secret::from_bytes(RFC_KEY.to_vec());
        let shown = format!("{secret:?}");
        assert_eq!(shown, "Secret(<20 bytes redacted>)");
    }
}

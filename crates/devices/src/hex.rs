//! Hex text for APDUs: upper case out (the exec bridge's line format and
//! traces), either case in.

use data_encoding::{HEXLOWER_PERMISSIVE, HEXUPPER};

/// Upper-case hex without separators.
pub fn encode(bytes: &[u8]) -> String {
    HEXUPPER.encode(bytes)
}

/// Upper-case hex with a space between bytes, as the spec writes APDUs.
pub fn spaced(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 3);
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(&format!("{byte:02X}"));
    }
    text
}

/// Decodes hex of either case; spaces are ignored.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    HEXLOWER_PERMISSIVE.decode(compact.as_bytes()).ok()
}

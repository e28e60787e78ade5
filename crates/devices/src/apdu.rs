//! ISO 7816-4 command and response APDUs, as data.
//!
//! Both token families speak short APDUs only (every body ≤ 68 bytes, spec
//! §7.3). A [`Command`] also says whether its body carries a secret, so a
//! trace can show every APDU without showing a seed or a key.

use std::fmt;

use crate::crypto::{DeviceKey, command_mac};

/// A command APDU.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    /// The command data (case 3/4); empty for case 1/2.
    pub data: Vec<u8>,
    /// Le, for case 2/4 commands.
    pub le: Option<u8>,
    /// What a trace shows instead of the data, when the data carries a secret
    /// (a seed, a key, or something derived from the key).
    pub redact: Option<&'static str>,
}

impl Command {
    /// A command without data (case 1, or case 2 with `le`).
    pub fn header(cla: u8, ins: u8, p1: u8, p2: u8, le: Option<u8>) -> Command {
        Command {
            cla,
            ins,
            p1,
            p2,
            data: Vec::new(),
            le,
            redact: None,
        }
    }

    /// A case 3 command: header and data, no Le.
    pub fn with_data(cla: u8, ins: u8, p1: u8, p2: u8, data: Vec<u8>) -> Command {
        debug_assert!(data.len() <= 255, "short APDUs only");
        Command {
            cla,
            ins,
            p1,
            p2,
            data,
            le: None,
            redact: None,
        }
    }

    /// A secure (CLA `84`) command: `body || MAC`, the MAC over the header
    /// with class `80` and the body length without MAC (spec §2.4).
    pub fn secure(key: &DeviceKey, ins: u8, p1: u8, p2: u8, body: &[u8]) -> Command {
        let mac = command_mac(key, ins, p1, p2, body);
        let mut data = Vec::with_capacity(body.len() + 4);
        data.extend_from_slice(body);
        data.extend_from_slice(&mac);
        Command::with_data(0x84, ins, p1, p2, data)
    }

    /// Marks the data as secret-bearing for traces.
    pub fn redacted(mut self, what: &'static str) -> Command {
        self.redact = Some(what);
        self
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(6 + self.data.len());
        bytes.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            bytes.push(self.data.len() as u8);
            bytes.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            bytes.push(le);
        }
        bytes
    }

    /// How a trace shows this command: the header in full; the body in full
    /// unless it carries a secret, then only its length and what it is.
    pub fn trace_text(&self) -> String {
        match self.redact {
            None => crate::hex::spaced(&self.to_bytes()),
            Some(what) => {
                let mut head = vec![self.cla, self.ins, self.p1, self.p2];
                head.push(self.data.len() as u8);
                let mut text = crate::hex::spaced(&head);
                text.push_str(&format!(" [{} bytes redacted: {what}]", self.data.len()));
                if let Some(le) = self.le {
                    text.push_str(&format!(" {le:02X}"));
                }
                text
            }
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.trace_text())
    }
}

/// A status word (SW1 SW2).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl StatusWord {
    pub const OK: StatusWord = StatusWord(0x9000);
    /// Molto-2: accepted, waiting for the ▲ button (reset, key change).
    pub const PRESS_BUTTON: StatusWord = StatusWord(0x9060);
    pub const WRONG_LENGTH: StatusWord = StatusWord(0x6700);
    pub const SECURITY_NOT_SATISFIED: StatusWord = StatusWord(0x6982);
    pub const AUTH_BLOCKED: StatusWord = StatusWord(0x6983);
    pub const CONDITIONS_NOT_SATISFIED: StatusWord = StatusWord(0x6985);
    pub const SM_DATA_WRONG: StatusWord = StatusWord(0x6988);
    pub const WRONG_DATA: StatusWord = StatusWord(0x6A80);
    pub const FUNCTION_NOT_SUPPORTED: StatusWord = StatusWord(0x6A81);
    pub const NOT_FOUND: StatusWord = StatusWord(0x6A83);
    pub const WRONG_P1P2: StatusWord = StatusWord(0x6A86);
    pub const INS_NOT_SUPPORTED: StatusWord = StatusWord(0x6D00);
    pub const CLA_NOT_SUPPORTED: StatusWord = StatusWord(0x6E00);
    /// Molto-2: a public-block read sent with Le (case 4).
    pub const PUBLIC_READ_WITH_LE: StatusWord = StatusWord(0x6FFB);

    pub fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }

    pub fn sw2(self) -> u8 {
        self.0 as u8
    }

    /// `63 NN`: authentication failed, NN attempts left (Molto-2).
    pub fn attempts_left(self) -> Option<u8> {
        (self.sw1() == 0x63).then_some(self.sw2())
    }

    /// What the status word means, in words.
    pub fn meaning(self) -> &'static str {
        match self.0 {
            0x9000 => "success",
            0x9060 => "accepted, waiting for the ▲ button",
            0x6700 => "wrong length",
            0x6982 => "security status not satisfied",
            0x6983 => "authentication blocked or refused",
            0x6985 => "conditions of use not satisfied",
            0x6988 => "incorrect secure-messaging data (MAC)",
            0x6A80 => "wrong data",
            0x6A81 => "function not supported",
            0x6A83 => "referenced data not found",
            0x6A86 => "wrong P1/P2",
            0x6D00 => "instruction not supported",
            0x6E00 => "class not supported",
            0x6FFB => "public read sent with Le",
            sw if sw >> 8 == 0x63 => "authentication failed",
            sw if sw >> 8 == 0x61 => "more data available (T=0)",
            sw if sw >> 8 == 0x6C => "wrong Le (T=0)",
            _ => "undocumented status",
        }
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SW {:04X}", self.0)
    }
}

/// A response APDU: data and status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: StatusWord,
}

/// A response shorter than its status word.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the response has {0} byte(s); every response ends in a 2-byte status word")]
pub struct ShortResponse(pub usize);

impl Response {
    /// A response with data.
    pub fn new(data: Vec<u8>, sw: StatusWord) -> Response {
        Response { data, sw }
    }

    /// A bare status word.
    pub fn status(sw: StatusWord) -> Response {
        Response {
            data: Vec::new(),
            sw,
        }
    }

    /// Splits `data || SW1 SW2`.
    pub fn parse(bytes: &[u8]) -> Result<Response, ShortResponse> {
        if bytes.len() < 2 {
            return Err(ShortResponse(bytes.len()));
        }
        let (data, sw) = bytes.split_at(bytes.len() - 2);
        Ok(Response {
            data: data.to_vec(),
            sw: StatusWord(u16::from_be_bytes([sw[0], sw[1]])),
        })
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = self.data.clone();
        bytes.extend_from_slice(&self.sw.0.to_be_bytes());
        bytes
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex::spaced(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_on_the_wire() {
        assert_eq!(
            Command::header(0x80, 0x41, 0, 0, Some(0)).to_bytes(),
            [0x80, 0x41, 0, 0, 0]
        );
        assert_eq!(
            Command::with_data(0x80, 0x41, 0, 7, vec![0x70]).to_bytes(),
            [0x80, 0x41, 0, 7, 1, 0x70]
        );
        let response = Response::parse(&[1, 2, 0x90, 0x00]).unwrap();
        assert_eq!(response.data, [1, 2]);
        assert_eq!(response.sw, StatusWord::OK);
        assert_eq!(Response::parse(&[0x90]), Err(ShortResponse(1)));
        assert_eq!(StatusWord(0x6303).attempts_left(), Some(3));
        assert_eq!(StatusWord::OK.attempts_left(), None);
    }

    #[test]
    fn redacted_trace_hides_the_body() {
        let command = Command::with_data(0x84, 0xC5, 1, 0, vec![0xAB; 20]).redacted("seed");
        assert_eq!(
            command.trace_text(),
            "84 C5 01 00 14 [20 bytes redacted: seed]"
        );
        assert!(!command.trace_text().contains("AB"));
    }
}

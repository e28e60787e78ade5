//! A simulated single-profile token: the dispatcher of the openT2OTP
//! reference firmware as spec §7.1 describes it.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{Display, offset_time, parse_command, random_challenge, totp_code};
use crate::apdu::{Response, StatusWord};
use crate::crypto::{self, DeviceKey};
use crate::molto2 as proto;
use crate::params::Hmac;
use crate::single::model_for_serial;

/// The reference firmware's default serial (an OTPC-P2-i, restricted sync).
pub const DEFAULT_SERIAL: &str = "86596220000001";

/// Firmware variants (spec §4.3, §10).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SingleOptions {
    /// Pre-2025 firmware: after this many wrong answers the key locks for
    /// good. `None`: the current firmware, where a wrong answer only
    /// invalidates the challenge.
    pub lockout_after: Option<u8>,
    /// Overrides the model table's restricted-sync flag (for serials outside
    /// the table, or to test both behaviours on one serial).
    pub restricted_sync: Option<bool>,
}

/// A simulated single-profile token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SingleSim {
    pub serial: String,
    #[serde(default)]
    pub options: SingleOptions,
    /// The RTC minus host time.
    pub clock_offset: i64,
    #[serde(with = "super::hex_bytes::option", default)]
    pub seed: Option<Vec<u8>>,
    pub hmac: u8,
    pub time_step: u8,
    pub display_timeout: u8,
    pub key_locked: bool,
    #[serde(default)]
    pub failed_answers: u8,
    #[serde(default)]
    pub apdus_received: u64,
    #[serde(skip)]
    challenge: Option<[u8; 8]>,
    #[serde(skip)]
    authenticated: bool,
}

impl SingleSim {
    /// A token in the reference firmware's default state: SHA1, 30 s,
    /// display timeout 30 s, no seed.
    pub fn new(serial: &str, options: SingleOptions) -> SingleSim {
        SingleSim {
            serial: serial.to_owned(),
            options,
            clock_offset: 0,
            seed: None,
            hmac: 1,
            time_step: 0x1E,
            display_timeout: 1,
            key_locked: false,
            failed_answers: 0,
            apdus_received: 0,
            challenge: None,
            authenticated: false,
        }
    }

    /// Whether a config write clears the seed: the option, else the model
    /// table (false only for miniOTP-2-i, OTPC-P1-i, C302-i), else the
    /// firmware default (restricted).
    pub fn restricted_sync(&self) -> bool {
        self.options.restricted_sync.unwrap_or_else(|| {
            model_for_serial(&self.serial).is_none_or(|model| model.restricted_sync)
        })
    }

    /// RAM is lost.
    pub fn power_cycle(&mut self) {
        self.challenge = None;
        self.authenticated = false;
    }

    /// What the display shows: always 6 digits.
    pub fn display(&self, now: u64) -> Display {
        let Some(seed) = &self.seed else {
            return Display::Empty;
        };
        let algorithm =
            Hmac::from_wire(self.hmac).map_or(oathdesk_otp::Algorithm::Sha1, Hmac::algorithm);
        let time = u64::from(offset_time(now, self.clock_offset));
        match totp_code(seed, algorithm, 6, u64::from(self.time_step & 0x3F), time) {
            Some(code) => Display::Code(code),
            None => Display::Empty,
        }
    }

    /// Handles one APDU.
    pub fn process(&mut self, bytes: &[u8], now: u64) -> Response {
        self.apdus_received += 1;
        let status = Response::status;
        let Some(c) = parse_command(bytes) else {
            return status(StatusWord::WRONG_LENGTH);
        };
        match c.cla {
            0x80 => match c.ins {
                proto::INS_INFO => Response::new(
                    proto::encode_info(&self.serial, offset_time(now, self.clock_offset)),
                    StatusWord::OK,
                ),
                proto::INS_CHALLENGE if c.p1 == 0x08 => {
                    let challenge = random_challenge();
                    self.challenge = Some(challenge);
                    self.authenticated = false;
                    Response::new(challenge.to_vec(), StatusWord::OK)
                }
                proto::INS_ANSWER => self.answer(c.data),
                _ => status(StatusWord::INS_NOT_SUPPORTED),
            },
            0x84 => {
                if c.data.len() < 4 {
                    return status(StatusWord::WRONG_LENGTH);
                }
                let (body, mac) = c.data.split_at(c.data.len() - 4);
                let key = DeviceKey::single_profile();
                let expected = crypto::command_mac(&key, c.ins, c.p1, c.p2, body);
                // The reference checks the MAC before the authentication;
                // both failures are 6983.
                if !bool::from(expected.ct_eq(mac)) {
                    return status(StatusWord::AUTH_BLOCKED);
                }
                match c.ins {
                    proto::INS_SEED if c.p1 == 0x01 => {
                        if !self.authenticated {
                            return status(StatusWord::AUTH_BLOCKED);
                        }
                        self.write_seed(body, &key)
                    }
                    proto::INS_CONFIG => {
                        if !self.authenticated {
                            return status(StatusWord::AUTH_BLOCKED);
                        }
                        self.write_config(body, now)
                    }
                    _ => status(StatusWord::INS_NOT_SUPPORTED),
                }
            }
            _ => status(StatusWord::CLA_NOT_SUPPORTED),
        }
    }

    fn answer(&mut self, data: &[u8]) -> Response {
        let status = Response::status;
        if self.key_locked {
            return status(StatusWord::AUTH_BLOCKED);
        }
        let (Some(challenge), Ok(answer)) = (self.challenge, <[u8; 16]>::try_from(data)) else {
            return status(StatusWord::WRONG_DATA);
        };
        self.challenge = None;
        let expected = crypto::challenge_answer(&DeviceKey::single_profile(), &challenge);
        if bool::from(expected.ct_eq(&answer)) {
            self.authenticated = true;
            return status(StatusWord::OK);
        }
        self.failed_answers = self.failed_answers.saturating_add(1);
        if let Some(limit) = self.options.lockout_after
            && self.failed_answers >= limit
        {
            self.key_locked = true;
        }
        status(StatusWord::AUTH_BLOCKED)
    }

    fn write_seed(&mut self, body: &[u8], key: &DeviceKey) -> Response {
        let status = Response::status;
        if body.len() < 16 || body.len() > 64 || !body.len().is_multiple_of(16) {
            return status(StatusWord::WRONG_DATA);
        }
        let mut plain = zeroize::Zeroizing::new(body.to_vec());
        crypto::ecb_decrypt(key, &mut plain);
        match crypto::unpad_strict(&plain) {
            Some(len) if len > 0 => {
                self.seed = Some(plain[..len].to_vec());
                status(StatusWord::OK)
            }
            _ => status(StatusWord::WRONG_DATA),
        }
    }

    fn write_config(&mut self, body: &[u8], now: u64) -> Response {
        let status = Response::status;
        // The fixed 19-byte layout, every tag and length checked.
        let [
            0x81,
            0x11,
            0x1F,
            0x01,
            display @ 0..=3,
            0x0F,
            0x04,
            t0,
            t1,
            t2,
            t3,
            0x86,
            0x06,
            0x0A,
            0x01,
            hmac @ (1 | 2),
            0x0D,
            0x01,
            step,
        ] = *body
        else {
            return status(StatusWord::WRONG_DATA);
        };
        if step & 0x3F == 0 {
            return status(StatusWord::WRONG_DATA);
        }
        let time = u32::from_be_bytes([t0, t1, t2, t3]);
        self.clock_offset = i64::from(time) - now.min(i64::MAX as u64) as i64;
        self.display_timeout = display;
        self.hmac = hmac;
        self.time_step = step;
        if self.restricted_sync() {
            self.seed = None;
        }
        status(StatusWord::OK)
    }
}

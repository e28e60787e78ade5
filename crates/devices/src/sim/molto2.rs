//! A simulated Molto-2 (spec §7.2).
//!
//! Where the spec documents behaviour, the simulator follows it; where it
//! marks a question open (§10), [`Molto2Options`] chooses, so that tests can
//! run oathdesk against every plausible token. Simulator choices the spec
//! does not make at all are stated on the fields.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{ButtonOutcome, Display, offset_time, parse_command, random_challenge, totp_code};
use crate::apdu::{Response, StatusWord};
use crate::crypto::{self, DeviceKey};
use crate::molto2::{self as proto, ProfileBlock};
use crate::params::Hmac;

/// The serial of a new simulated Molto-2 (the one in Token2's README).
pub const DEFAULT_SERIAL: &str = "826658719844499";

/// How a seed's plaintext is de-padded (spec §10.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Depadding {
    /// The reference firmware's rule: must end in `80 00…`, else `6A80`.
    #[default]
    Strict,
    /// Without a `80` marker the whole plaintext is the seed (a token that
    /// takes unpadded block-aligned seeds).
    Tolerant,
}

/// What a full configuration (`D4` with `81 14`) does to an occupied
/// profile (spec §10.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigOnOccupied {
    /// Applies it; the seed stays (keyroost writes config after the seed).
    #[default]
    Accept,
    /// Refuses with `6985` (Token2: "config requires an empty profile").
    Reject,
    /// Applies it and clears the seed.
    ClearSeed,
}

/// What happens when the attempt counter reaches 0 (spec §10.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AtZeroAttempts {
    /// Every answer is refused (`6983`) until a factory reset.
    #[default]
    LockedUntilReset,
    /// Refused for good: not even a factory reset brings it back.
    Permanent,
}

/// The unlock framing a token accepts (spec §10.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnlockAccepts {
    /// `… 01 01` only; `… 01 00` is answered `6A80`.
    #[default]
    Current,
    /// `… 01 00` only.
    Older,
    /// Either.
    Both,
}

/// What an empty profile's public block reports (spec §3.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmptyBlock {
    /// Default configuration (SHA1, 30 s, 6 digits), seed byte 00.
    #[default]
    Defaults,
    /// An all-zero body.
    Zeros,
}

/// The simulator's answers to the spec's open questions. Defaults are the
/// recommendation or the hardware-verified observation where there is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Molto2Options {
    /// Profiles: 100 (Molto-2 v2) or 50 (v1).
    pub profiles: u8,
    /// Authentication attempts before the token locks (the real number is
    /// undocumented).
    pub attempts: u8,
    pub at_zero_attempts: AtZeroAttempts,
    pub depadding: Depadding,
    /// Whether `C5` on a profile that holds a seed is refused with `6985`.
    pub reject_seed_on_occupied: bool,
    pub config_on_occupied: ConfigOnOccupied,
    /// Whether Token2's all-zero, zero-padded seed deletes the seed (§10.2);
    /// otherwise it fails de-padding like any other unmarked block.
    pub zero_seed_deletes: bool,
    /// SW for a wrong MAC on a `84` command (undocumented).
    pub bad_mac_sw: u16,
    /// SW for a `84` command without authentication (undocumented).
    pub no_auth_sw: u16,
    /// Whether `E6` needs authentication (keyroost on hardware: no; Token2's
    /// documents: yes).
    pub delete_needs_auth: bool,
    /// Whether lock/unlock need authentication.
    pub lock_needs_auth: bool,
    pub unlock_accepts: UnlockAccepts,
    /// SW of factory reset and key change: `9060` (observed) or `9000`.
    pub confirm_sw: u16,
    pub empty_block: EmptyBlock,
}

impl Default for Molto2Options {
    fn default() -> Molto2Options {
        Molto2Options {
            profiles: 100,
            attempts: 5,
            at_zero_attempts: AtZeroAttempts::LockedUntilReset,
            depadding: Depadding::Strict,
            reject_seed_on_occupied: false,
            config_on_occupied: ConfigOnOccupied::Accept,
            zero_seed_deletes: true,
            bad_mac_sw: StatusWord::SM_DATA_WRONG.0,
            no_auth_sw: StatusWord::SECURITY_NOT_SATISFIED.0,
            delete_needs_auth: false,
            lock_needs_auth: true,
            unlock_accepts: UnlockAccepts::Current,
            confirm_sw: StatusWord::PRESS_BUTTON.0,
            empty_block: EmptyBlock::Defaults,
        }
    }
}

/// One profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(with = "super::hex_bytes::option", default)]
    pub seed: Option<Vec<u8>>,
    /// Plaintext, at most 16 bytes.
    #[serde(with = "super::hex_bytes", default)]
    pub title: Vec<u8>,
    /// `None` until a configuration is written.
    pub config: Option<StoredConfig>,
    /// This profile's clock minus the token's system clock (simulator
    /// choice: profiles run on the system clock, each with its own skew, so
    /// moving the system clock — `clock_offset` — moves every profile's codes
    /// with what the info command reports).
    #[serde(default)]
    pub skew: i64,
    /// The last time written by a config or time sync (time field B).
    pub last_set: u32,
}

/// The configuration bytes of a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredConfig {
    pub hmac: u8,
    pub digits: u8,
    pub step: u8,
    pub display_timeout: u8,
}

impl Default for StoredConfig {
    fn default() -> StoredConfig {
        StoredConfig {
            hmac: 1,
            digits: 6,
            step: 0x1E,
            display_timeout: 1,
        }
    }
}

/// Waiting for ▲.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pending {
    FactoryReset,
    NewKey(#[serde(with = "super::hex_bytes")] Vec<u8>),
}

/// A simulated Molto-2.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Molto2Sim {
    pub serial: String,
    #[serde(default)]
    pub options: Molto2Options,
    /// K, the derived SM4 key.
    #[serde(with = "super::hex_bytes")]
    key: Vec<u8>,
    pub attempts_left: u8,
    /// Locked for good (see [`AtZeroAttempts::Permanent`]).
    #[serde(default)]
    pub bricked: bool,
    pub pending: Option<Pending>,
    pub screen_locked: bool,
    /// The system clock minus host time.
    pub clock_offset: i64,
    pub profiles: Vec<Profile>,
    /// Every APDU received, for tests and benchmarks.
    #[serde(default)]
    pub apdus_received: u64,
    #[serde(skip)]
    challenge: Option<[u8; 8]>,
    #[serde(skip)]
    authenticated: bool,
}

impl Molto2Sim {
    /// A factory-fresh token.
    pub fn new(serial: &str, options: Molto2Options) -> Molto2Sim {
        Molto2Sim {
            serial: serial.to_owned(),
            key: DeviceKey::molto2_factory().as_bytes().to_vec(),
            attempts_left: options.attempts,
            bricked: false,
            pending: None,
            screen_locked: false,
            clock_offset: 0,
            profiles: vec![Profile::default(); usize::from(options.profiles)],
            apdus_received: 0,
            challenge: None,
            authenticated: false,
            options,
        }
    }

    fn key(&self) -> DeviceKey {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&self.key);
        DeviceKey::from_bytes(bytes)
    }

    /// Whether the token's customer key is still the factory one.
    pub fn has_factory_key(&self) -> bool {
        self.key().is_molto2_factory()
    }

    /// Sets the clock drift: the system clock runs `offset` seconds from host time.
    pub fn set_clock_offset(&mut self, offset: i64) {
        self.clock_offset = offset;
    }

    /// RAM is lost.
    pub fn power_cycle(&mut self) {
        self.challenge = None;
        self.authenticated = false;
    }

    /// ▲: commits a pending factory reset or key change.
    pub fn press_button(&mut self) -> ButtonOutcome {
        match self.pending.take() {
            None => ButtonOutcome::Nothing,
            Some(Pending::FactoryReset) => {
                let profiles = usize::from(self.options.profiles);
                self.profiles = vec![Profile::default(); profiles];
                self.key = DeviceKey::molto2_factory().as_bytes().to_vec();
                self.attempts_left = self.options.attempts;
                self.screen_locked = false;
                self.authenticated = false;
                ButtonOutcome::FactoryReset
            }
            Some(Pending::NewKey(key)) => {
                self.key = key;
                self.authenticated = false;
                ButtonOutcome::KeyChanged
            }
        }
    }

    /// The time a profile's clock shows.
    pub fn profile_time(&self, profile: usize, now: u64) -> u32 {
        let offset = self
            .clock_offset
            .saturating_add(self.profiles[profile].skew);
        offset_time(now, offset)
    }

    /// What the display shows for `profile`.
    pub fn display(&self, profile: u8, now: u64) -> Display {
        if self.screen_locked {
            return Display::Locked;
        }
        let Some(slot) = self.profiles.get(usize::from(profile)) else {
            return Display::Empty;
        };
        let Some(seed) = &slot.seed else {
            return Display::Empty;
        };
        let config = slot.config.unwrap_or_default();
        let algorithm =
            Hmac::from_wire(config.hmac).map_or(oathdesk_otp::Algorithm::Sha1, Hmac::algorithm);
        let time = u64::from(self.profile_time(usize::from(profile), now));
        match totp_code(seed, algorithm, config.digits, u64::from(config.step), time) {
            Some(code) => Display::Code(code),
            None => Display::Empty,
        }
    }

    /// The public block of a profile, as the token reports it.
    pub fn block(&self, profile: usize, now: u64) -> ProfileBlock {
        let slot = &self.profiles[profile];
        let occupied = slot.seed.is_some();
        if !occupied
            && slot.config.is_none()
            && slot.title.is_empty()
            && self.options.empty_block == EmptyBlock::Zeros
        {
            return ProfileBlock {
                flag: 0,
                title: Vec::new(),
                time_a: 0,
                time_b: 0,
                hmac: 0,
                step: 0,
                digits: 0,
                seed_present: false,
            };
        }
        let config = slot.config.unwrap_or_default();
        ProfileBlock {
            flag: if occupied { 0x20 } else { 0 },
            title: slot.title.clone(),
            time_a: self.profile_time(profile, now),
            time_b: slot.last_set,
            hmac: config.hmac,
            step: config.step,
            digits: config.digits,
            seed_present: occupied,
        }
    }

    /// Handles one APDU.
    pub fn process(&mut self, bytes: &[u8], now: u64) -> Response {
        self.apdus_received += 1;
        let Some(command) = parse_command(bytes) else {
            return Response::status(StatusWord::WRONG_LENGTH);
        };
        let status = Response::status;
        match command.cla {
            0x80 => self.plain(&command, now),
            0x84 => self.secure(&command, now),
            _ => status(StatusWord::CLA_NOT_SUPPORTED),
        }
    }

    fn profile_index(&self, p2: u8) -> Option<usize> {
        (usize::from(p2) < self.profiles.len()).then_some(usize::from(p2))
    }

    fn plain(&mut self, c: &super::Parsed<'_>, now: u64) -> Response {
        let status = Response::status;
        match c.ins {
            proto::INS_INFO if c.data == [proto::TAG_PROFILE] => {
                if c.has_le {
                    return status(StatusWord::PUBLIC_READ_WITH_LE);
                }
                match self.profile_index(c.p2) {
                    Some(p) => Response::new(
                        proto::encode_public_block(&self.block(p, now)),
                        StatusWord::OK,
                    ),
                    None => status(StatusWord::WRONG_P1P2),
                }
            }
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
            proto::INS_CHALLENGE => status(StatusWord::WRONG_P1P2),
            proto::INS_ANSWER => self.answer(c.data),
            proto::INS_RESET => {
                if self.bricked {
                    return status(StatusWord::AUTH_BLOCKED);
                }
                self.pending = Some(Pending::FactoryReset);
                status(StatusWord(self.options.confirm_sw))
            }
            proto::INS_DELETE => {
                if self.options.delete_needs_auth && !self.authenticated {
                    return status(StatusWord(self.options.no_auth_sw));
                }
                let Some(p) = self.profile_index(c.p2) else {
                    return status(StatusWord::WRONG_P1P2);
                };
                match self.profiles[p].seed.take() {
                    Some(_) => status(StatusWord::OK),
                    None => status(StatusWord::NOT_FOUND),
                }
            }
            proto::INS_SCREEN if (c.p1, c.p2) == (0x0C, 0x02) => {
                if self.options.lock_needs_auth && !self.authenticated {
                    return status(StatusWord(self.options.no_auth_sw));
                }
                match c.data {
                    [] => {
                        self.screen_locked = true;
                        status(StatusWord::OK)
                    }
                    [byte @ (0 | 1)] => {
                        let accepted = match self.options.unlock_accepts {
                            UnlockAccepts::Current => *byte == 1,
                            UnlockAccepts::Older => *byte == 0,
                            UnlockAccepts::Both => true,
                        };
                        if !accepted {
                            return status(StatusWord::WRONG_DATA);
                        }
                        self.screen_locked = false;
                        status(StatusWord::OK)
                    }
                    _ => status(StatusWord::WRONG_DATA),
                }
            }
            _ => status(StatusWord::INS_NOT_SUPPORTED),
        }
    }

    fn answer(&mut self, data: &[u8]) -> Response {
        let status = Response::status;
        if self.bricked || self.attempts_left == 0 {
            return status(StatusWord::AUTH_BLOCKED);
        }
        let (Some(challenge), Ok(answer)) = (self.challenge.take(), <[u8; 16]>::try_from(data))
        else {
            return status(StatusWord::WRONG_DATA);
        };
        let expected = crypto::challenge_answer(&self.key(), &challenge);
        if bool::from(expected.ct_eq(&answer)) {
            self.authenticated = true;
            self.attempts_left = self.options.attempts;
            return status(StatusWord::OK);
        }
        self.authenticated = false;
        self.attempts_left -= 1;
        if self.attempts_left == 0 && self.options.at_zero_attempts == AtZeroAttempts::Permanent {
            self.bricked = true;
        }
        status(StatusWord(0x6300 | u16::from(self.attempts_left)))
    }

    fn secure(&mut self, c: &super::Parsed<'_>, now: u64) -> Response {
        let status = Response::status;
        if c.data.len() < 4 {
            return status(StatusWord::WRONG_LENGTH);
        }
        let (body, mac) = c.data.split_at(c.data.len() - 4);
        let key = self.key();
        let expected = crypto::command_mac(&key, c.ins, c.p1, c.p2, body);
        if !bool::from(expected.ct_eq(mac)) {
            return status(StatusWord(self.options.bad_mac_sw));
        }
        if !self.authenticated {
            return status(StatusWord(self.options.no_auth_sw));
        }
        match (c.ins, c.p1) {
            (proto::INS_SEED, 0x01) => self.write_seed(c.p2, body, &key),
            (proto::INS_TITLE, 0x00) => self.write_title(c.p2, body, &key),
            (proto::INS_CONFIG, 0x01) => self.write_config(c.p2, body, now),
            (proto::INS_CHANGE_KEY, 0x00) => self.change_key(body, &key),
            (proto::INS_SEED | proto::INS_TITLE | proto::INS_CONFIG | proto::INS_CHANGE_KEY, _) => {
                status(StatusWord::WRONG_P1P2)
            }
            _ => status(StatusWord::INS_NOT_SUPPORTED),
        }
    }

    fn decrypt(body: &[u8], key: &DeviceKey) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        if body.is_empty() || body.len() > 64 || !body.len().is_multiple_of(crypto::BLOCK) {
            return None;
        }
        let mut plain = zeroize::Zeroizing::new(body.to_vec());
        crypto::ecb_decrypt(key, &mut plain);
        Some(plain)
    }

    fn write_seed(&mut self, p2: u8, body: &[u8], key: &DeviceKey) -> Response {
        let status = Response::status;
        let Some(p) = self.profile_index(p2) else {
            return status(StatusWord::WRONG_P1P2);
        };
        let Some(plain) = Self::decrypt(body, key) else {
            return status(StatusWord::WRONG_DATA);
        };
        if plain.iter().all(|&b| b == 0) {
            if self.options.zero_seed_deletes {
                self.profiles[p].seed = None;
                return status(StatusWord::OK);
            }
            return status(StatusWord::WRONG_DATA);
        }
        let seed = match (crypto::unpad_strict(&plain), self.options.depadding) {
            (Some(len), _) if len > 0 => plain[..len].to_vec(),
            (_, Depadding::Tolerant) => plain.to_vec(),
            _ => return status(StatusWord::WRONG_DATA),
        };
        if seed.len() > 63 {
            return status(StatusWord::WRONG_DATA);
        }
        if self.profiles[p].seed.is_some() && self.options.reject_seed_on_occupied {
            return status(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        self.profiles[p].seed = Some(seed);
        status(StatusWord::OK)
    }

    fn write_title(&mut self, p2: u8, body: &[u8], key: &DeviceKey) -> Response {
        let status = Response::status;
        let Some(p) = self.profile_index(p2) else {
            return status(StatusWord::WRONG_P1P2);
        };
        let plain = match Self::decrypt(body, key) {
            Some(plain) if plain.len() == 16 => plain,
            _ => return status(StatusWord::WRONG_DATA),
        };
        // Titles of 13..16 bytes arrive unpadded (spec §10.10): taken whole,
        // without trailing zeros.
        let len = crypto::unpad_strict(&plain)
            .unwrap_or_else(|| plain.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1));
        self.profiles[p].title = plain[..len].to_vec();
        status(StatusWord::OK)
    }

    fn write_config(&mut self, p2: u8, body: &[u8], now: u64) -> Response {
        let status = Response::status;
        let Some(p) = self.profile_index(p2) else {
            return status(StatusWord::WRONG_P1P2);
        };
        let Some(tlv) = parse_config_tlv(body) else {
            return status(StatusWord::WRONG_DATA);
        };
        let full = tlv.hmac.is_some() || tlv.digits.is_some() || tlv.step.is_some();
        let occupied = self.profiles[p].seed.is_some();
        if full && occupied {
            match self.options.config_on_occupied {
                ConfigOnOccupied::Accept => {}
                ConfigOnOccupied::Reject => return status(StatusWord::CONDITIONS_NOT_SATISFIED),
                ConfigOnOccupied::ClearSeed => self.profiles[p].seed = None,
            }
        }
        let profile = &mut self.profiles[p];
        let mut config = profile.config.unwrap_or_default();
        if let Some(hmac) = tlv.hmac {
            config.hmac = hmac;
        }
        if let Some(digits) = tlv.digits {
            config.digits = digits;
        }
        if let Some(step) = tlv.step {
            config.step = step;
        }
        if let Some(display_timeout) = tlv.display_timeout {
            config.display_timeout = display_timeout;
        }
        if full || profile.config.is_some() || tlv.display_timeout.is_some() {
            profile.config = Some(config);
        }
        if let Some(time) = tlv.time {
            let offset = i64::from(time) - now.min(i64::MAX as u64) as i64;
            profile.last_set = time;
            // Simulator choice: the system clock follows the last time set;
            // the other profiles keep the time they show.
            let moved = offset - self.clock_offset;
            for (i, other) in self.profiles.iter_mut().enumerate() {
                other.skew = if i == p { 0 } else { other.skew - moved };
            }
            self.clock_offset = offset;
        }
        status(StatusWord::OK)
    }

    fn change_key(&mut self, body: &[u8], key: &DeviceKey) -> Response {
        let status = Response::status;
        let plain = match Self::decrypt(body, key) {
            Some(plain) if plain.len() == 32 => plain,
            _ => return status(StatusWord::WRONG_DATA),
        };
        if plain[0] != 0 || plain[17] != 0x80 || plain[18..].iter().any(|&b| b != 0) {
            return status(StatusWord::WRONG_DATA);
        }
        self.pending = Some(Pending::NewKey(plain[1..17].to_vec()));
        status(StatusWord(self.options.confirm_sw))
    }
}

/// The fields of a Molto-2 `D4` TLV; missing tags are allowed (time sync).
#[derive(Debug, Default)]
struct ConfigTlv {
    display_timeout: Option<u8>,
    time: Option<u32>,
    hmac: Option<u8>,
    digits: Option<u8>,
    step: Option<u8>,
}

/// Parses `81 L { 1F 01 t | 0F 04 time | 86 L { 0A 01 h | 0B 01 d | 0D 01 s } }`
/// generically, checking every value against what the token supports.
fn parse_config_tlv(body: &[u8]) -> Option<ConfigTlv> {
    let [0x81, len, inner @ ..] = body else {
        return None;
    };
    if inner.len() != usize::from(*len) {
        return None;
    }
    let mut tlv = ConfigTlv::default();
    walk(inner, &mut |tag, value| match (tag, value) {
        (0x1F, [t @ 0..=3]) => {
            tlv.display_timeout = Some(*t);
            true
        }
        (0x0F, [a, b, c, d]) => {
            tlv.time = Some(u32::from_be_bytes([*a, *b, *c, *d]));
            true
        }
        (0x86, params) => walk(params, &mut |tag, value| match (tag, value) {
            (0x0A, [h @ (1 | 2)]) => {
                tlv.hmac = Some(*h);
                true
            }
            (0x0B, [d @ (4 | 6 | 8 | 10)]) => {
                tlv.digits = Some(*d);
                true
            }
            (0x0D, [s @ (0x1E | 0x3C)]) => {
                tlv.step = Some(*s);
                true
            }
            _ => false,
        }),
        _ => false,
    })
    .then_some(tlv)
}

/// Calls `f` on each `tag len value`; false when a TLV is cut short or `f`
/// refuses one.
fn walk(mut data: &[u8], f: &mut dyn FnMut(u8, &[u8]) -> bool) -> bool {
    while let [tag, len, rest @ ..] = data {
        let len = usize::from(*len);
        if rest.len() < len || !f(*tag, &rest[..len]) {
            return false;
        }
        data = &rest[len..];
    }
    data.is_empty()
}

//! Simulators of both token families, for tests and for trying oathdesk
//! without hardware (`--transport sim:FILE`).
//!
//! They follow spec §7: the single-profile simulator is the openT2OTP
//! reference firmware's dispatcher ([`single`]); the Molto-2 simulator is
//! assembled from Token2's documents and keyroost's hardware observations
//! ([`molto2`]), with every open question of spec §10 as an option. Both
//! compute the codes their display would show from what was burned, with the
//! OTP engine, so a test can check that a token and the vault agree.
//!
//! A simulator lives in memory, or in a JSON file that is read before and
//! written after every APDU (so a "pulled cable" leaves the file exactly as
//! the token would be). The file holds the burned seeds in hex: it is a test
//! device, created readable by its owner only.

pub mod molto2;
pub mod single;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::params::Family;

pub use molto2::{Molto2Options, Molto2Sim};
pub use single::{SingleOptions, SingleSim};

/// A simulated token of either family.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "kebab-case")]
pub enum Simulator {
    Molto2(Box<Molto2Sim>),
    SingleProfile(Box<SingleSim>),
}

/// What pressing ▲ did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ButtonOutcome {
    /// Nothing was waiting for confirmation.
    Nothing,
    /// The factory reset happened: all profiles wiped, factory key back.
    FactoryReset,
    /// The new customer key is in force.
    KeyChanged,
}

/// The code a simulated display shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Display {
    Code(String),
    /// The profile holds no seed.
    Empty,
    /// The screen is locked (Molto-2 firmware 2.1+).
    Locked,
}

/// Reading or writing a simulator file failed.
#[derive(Debug, thiserror::Error)]
pub enum SimFileError {
    #[error("cannot read the simulated token {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write the simulated token {path}: {reason}")]
    Write { path: String, reason: String },
}

impl Simulator {
    /// A new simulated token, with `serial` or a fresh random one (two
    /// simulators are two tokens: a shared serial would make oathdesk take
    /// the second for the first).
    pub fn new(family: Family, serial: Option<&str>) -> Simulator {
        let serial = serial.map_or_else(|| fresh_serial(family), str::to_owned);
        match family {
            Family::Molto2 => {
                Simulator::Molto2(Box::new(Molto2Sim::new(&serial, Molto2Options::default())))
            }
            Family::SingleProfile => Simulator::SingleProfile(Box::new(SingleSim::new(
                &serial,
                SingleOptions::default(),
            ))),
        }
    }

    /// The family.
    pub fn family(&self) -> Family {
        match self {
            Simulator::Molto2(_) => Family::Molto2,
            Simulator::SingleProfile(_) => Family::SingleProfile,
        }
    }

    /// The serial.
    pub fn serial(&self) -> &str {
        match self {
            Simulator::Molto2(sim) => &sim.serial,
            Simulator::SingleProfile(sim) => &sim.serial,
        }
    }

    /// Handles one command APDU at host time `now`; returns the response
    /// APDU (data and status word).
    pub fn process(&mut self, command: &[u8], now: u64) -> Vec<u8> {
        match self {
            Simulator::Molto2(sim) => sim.process(command, now),
            Simulator::SingleProfile(sim) => sim.process(command, now),
        }
        .to_bytes()
    }

    /// The ▲ button (Molto-2 only; a single-profile token has nothing to confirm).
    pub fn press_button(&mut self) -> ButtonOutcome {
        match self {
            Simulator::Molto2(sim) => sim.press_button(),
            Simulator::SingleProfile(_) => ButtonOutcome::Nothing,
        }
    }

    /// What the display shows for `profile` at host time `now`.
    pub fn display(&self, profile: u8, now: u64) -> Display {
        match self {
            Simulator::Molto2(sim) => sim.display(profile, now),
            Simulator::SingleProfile(sim) => sim.display(now),
        }
    }

    /// The token's power was cut: RAM state (challenge, authentication) is
    /// gone. Every file-backed exchange starts like this.
    pub fn power_cycle(&mut self) {
        match self {
            Simulator::Molto2(sim) => sim.power_cycle(),
            Simulator::SingleProfile(sim) => sim.power_cycle(),
        }
    }

    /// Reads a simulator file.
    pub fn load(path: &Path) -> Result<Simulator, SimFileError> {
        let read_error = |reason: String| SimFileError::Read {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| read_error(format!("not a simulator file: {e}")))
    }

    /// Writes a simulator file (owner-only; replaced atomically).
    pub fn save(&self, path: &Path) -> Result<(), SimFileError> {
        let write_error = |reason: String| SimFileError::Write {
            path: path.display().to_string(),
            reason,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| write_error(e.to_string()))?;
        let temporary = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options
                .open(&temporary)
                .map_err(|e| write_error(e.to_string()))?;
            file.write_all(text.as_bytes())
                .map_err(|e| write_error(e.to_string()))?;
        }
        std::fs::rename(&temporary, path).map_err(|e| write_error(e.to_string()))
    }
}

/// Splits a received APDU into header, data and Le by the reference
/// firmware's length rules (spec §7.1): fewer than 4 bytes, or a 5th byte
/// (Lc) that promises more data than there is, is `6700`.
pub(crate) struct Parsed<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    /// The data after Lc; empty for case 1/2.
    pub data: &'a [u8],
    /// Set when the APDU is exactly 5 bytes (byte 5 read as Le) or has a
    /// byte after Lc's data (case 4).
    pub has_le: bool,
}

pub(crate) fn parse_command(bytes: &[u8]) -> Option<Parsed<'_>> {
    if bytes.len() < 4 {
        return None;
    }
    let mut parsed = Parsed {
        cla: bytes[0],
        ins: bytes[1],
        p1: bytes[2],
        p2: bytes[3],
        data: &[],
        has_le: false,
    };
    if bytes.len() == 5 {
        parsed.has_le = true;
        return Some(parsed);
    }
    if bytes.len() > 5 {
        let lc = usize::from(bytes[4]);
        if bytes.len() < 5 + lc {
            return None;
        }
        parsed.data = &bytes[5..5 + lc];
        parsed.has_le = bytes.len() > 5 + lc;
    }
    Some(parsed)
}

/// `Vec<u8>` as hex text in simulator files.
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        crate::hex::decode(&text).ok_or_else(|| serde::de::Error::custom("not hex"))
    }

    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match bytes {
                Some(bytes) => s.serialize_some(&crate::hex::encode(bytes)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(text) => crate::hex::decode(&text)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom("not hex")),
                None => Ok(None),
            }
        }
    }
}

/// A random serial shaped like the family's: the Molto-2's 15 digits
/// (prefix of the README's `826658719844499`), or an OTPC-P2-i's 14 (the
/// reference firmware's prefix, so it is a known programmable model).
pub fn fresh_serial(family: Family) -> String {
    let (prefix, len) = match family {
        Family::Molto2 => ("8266587", molto2::DEFAULT_SERIAL.len()),
        Family::SingleProfile => ("8659622", single::DEFAULT_SERIAL.len()),
    };
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).expect("the OS random number generator works");
    let digits: String = random
        .iter()
        .take(len - prefix.len())
        .map(|b| char::from(b'0' + b % 10))
        .collect();
    format!("{prefix}{digits}")
}

/// A fresh random challenge.
pub(crate) fn random_challenge() -> [u8; 8] {
    let mut challenge = [0u8; 8];
    getrandom::fill(&mut challenge).expect("the OS random number generator works");
    challenge
}

/// The TOTP code of `seed` at `time`, as the display shows it.
pub(crate) fn totp_code(
    seed: &[u8],
    algorithm: oathdesk_otp::Algorithm,
    digits: u8,
    period: u64,
    time: u64,
) -> Option<String> {
    use oathdesk_otp::{Digits, Secret, TimeStep, Totp};
    let totp = Totp::new(
        &Secret::from_bytes(seed.to_vec()),
        algorithm,
        Digits::new(u64::from(digits)).ok()?,
        TimeStep::new(period, 0).ok()?,
    );
    Some(totp.generate_at(time).ok()?.to_string())
}

/// Host time plus a signed offset, clamped to the tokens' u32 clock.
pub(crate) fn offset_time(now: u64, offset: i64) -> u32 {
    let time = i128::from(now) + i128::from(offset);
    time.clamp(0, i128::from(u32::MAX)) as u32
}

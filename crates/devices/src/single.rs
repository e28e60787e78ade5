//! The single-profile token protocol (spec §4): builders, the model table by
//! serial prefix, and which models clear their seed on a time sync.
//!
//! The info response has the Molto-2 layout, and the challenge and answer are
//! the same, so [`crate::molto2::parse_info`] and
//! [`crate::molto2::parse_challenge`] serve both families.

use crate::apdu::Command;
use crate::crypto::{self, DeviceKey};
use crate::molto2::{CLA, INS_ANSWER, INS_CHALLENGE, INS_CONFIG, INS_INFO, INS_SEED};
use crate::params::ProfileConfig;

/// `80 41 00 00 02 02 11`: serial and clock.
pub fn info() -> Command {
    Command::with_data(CLA, INS_INFO, 0, 0, vec![0x02, 0x11])
}

/// The two challenge framings seen in the tools (spec §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeForm {
    /// `80 4B 08 00 01 00` (keyroost, NFC Burner, openT2OTP test).
    Lc,
    /// `80 4B 08 00 00` (TOTPtokutil).
    Le,
}

/// An 8-byte challenge.
pub fn challenge(form: ChallengeForm) -> Command {
    match form {
        ChallengeForm::Lc => Command::with_data(CLA, INS_CHALLENGE, 0x08, 0, vec![0]),
        ChallengeForm::Le => Command::header(CLA, INS_CHALLENGE, 0x08, 0, Some(0)),
    }
}

/// `80 CE 00 00 10 …`, under the fixed key.
pub fn answer(challenge: &[u8; 8]) -> Command {
    Command::with_data(
        CLA,
        INS_ANSWER,
        0,
        0,
        crypto::challenge_answer(&DeviceKey::single_profile(), challenge).to_vec(),
    )
}

/// The 19-byte configuration TLV (spec §4.5): no digits tag.
pub fn config_tlv(config: &ProfileConfig, time: u32) -> [u8; 19] {
    let t = time.to_be_bytes();
    [
        0x81,
        0x11,
        0x1F,
        0x01,
        config.display_timeout.wire(),
        0x0F,
        0x04,
        t[0],
        t[1],
        t[2],
        t[3],
        0x86,
        0x06,
        0x0A,
        0x01,
        config.hmac.wire(),
        0x0D,
        0x01,
        config.period.wire(),
    ]
}

/// `84 D4 00 00 17`: configuration and clock together. On restricted-sync
/// models this clears the seed: write the seed after it.
pub fn write_config(config: &ProfileConfig, time: u32) -> Command {
    Command::secure(
        &DeviceKey::single_profile(),
        INS_CONFIG,
        0,
        0,
        &config_tlv(config, time),
    )
}

/// `84 C5 01 00 Lc`: the seed, always padded (Token2: the token requires the
/// extra block for aligned lengths).
pub fn write_seed(seed: &[u8]) -> Command {
    let key = DeviceKey::single_profile();
    let mut body = crypto::pad_always(seed);
    crypto::ecb_encrypt(&key, &mut body);
    Command::secure(&key, INS_SEED, 0x01, 0, &body).redacted("encrypted seed")
}

/// A programmable single-profile model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Model {
    /// The first 7 digits of the serial.
    pub prefix: &'static str,
    pub name: &'static str,
    /// Whether a config/time write clears the seed (most models: anti-replay).
    pub restricted_sync: bool,
}

/// The programmable models by serial prefix (spec §1.2, §4.6). Unrestricted
/// sync: miniOTP-2-i, OTPC-P1-i and C302-i.
pub const MODELS: [Model; 8] = [
    Model {
        prefix: "8659612",
        name: "OTPC-P1-i",
        restricted_sync: false,
    },
    Model {
        prefix: "8659622",
        name: "OTPC-P2-i",
        restricted_sync: true,
    },
    Model {
        prefix: "8659621",
        name: "OTPC-P2-i-NB",
        restricted_sync: true,
    },
    Model {
        prefix: "8659600",
        name: "miniOTP-2-i",
        restricted_sync: false,
    },
    Model {
        prefix: "8659601",
        name: "miniOTP-3-i",
        restricted_sync: true,
    },
    Model {
        prefix: "8659609",
        name: "miniOTP-3-i-NB",
        restricted_sync: true,
    },
    Model {
        prefix: "8659610",
        name: "C301-i",
        restricted_sync: true,
    },
    Model {
        prefix: "8659632",
        name: "C302-i",
        restricted_sync: false,
    },
];

/// The model of a serial, by longest prefix match; `None` for a serial that
/// is not a known programmable model (such tokens are read, never written).
pub fn model_for_serial(serial: &str) -> Option<&'static Model> {
    MODELS
        .iter()
        .filter(|m| serial.starts_with(m.prefix))
        .max_by_key(|m| m.prefix.len())
}

/// The known prefixes, for an error message.
pub fn known_prefixes() -> String {
    MODELS
        .iter()
        .map(|m| format!("{} {}", m.prefix, m.name))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    //! Spec §5.3, byte for byte.
    use super::*;
    use crate::hex;
    use crate::params::{DisplayTimeout, Hmac, Period};

    fn bytes(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    const CONFIG: ProfileConfig = ProfileConfig {
        hmac: Hmac::Sha1,
        digits: 6,
        period: Period::Secs30,
        display_timeout: DisplayTimeout::Secs30,
    };

    #[test]
    fn plain_commands() {
        assert_eq!(info().to_bytes(), bytes("80 41 00 00 02 02 11"));
        assert_eq!(
            challenge(ChallengeForm::Lc).to_bytes(),
            bytes("80 4B 08 00 01 00")
        );
        assert_eq!(
            challenge(ChallengeForm::Le).to_bytes(),
            bytes("80 4B 08 00 00")
        );
        assert_eq!(
            answer(&[1, 2, 3, 4, 5, 6, 7, 8]).to_bytes(),
            bytes("80 CE 00 00 10 C1 CD 2C F4 0D 50 8C ED C1 27 4F F1 AE 4C 19 F1")
        );
    }

    #[test]
    fn config_example() {
        assert_eq!(
            config_tlv(&CONFIG, 1_700_000_000).to_vec(),
            bytes("81 11 1F 01 01 0F 04 65 53 F1 00 86 06 0A 01 01 0D 01 1E")
        );
        assert_eq!(
            write_config(&CONFIG, 1_700_000_000).to_bytes(),
            bytes(
                "84 D4 00 00 17 81 11 1F 01 01 0F 04 65 53 F1 00 86 06 0A 01 01
                 0D 01 1E 4F FD C2 88"
            )
        );
    }

    #[test]
    fn seed_examples() {
        // Raw 10 bytes (NFC Burner style).
        assert_eq!(
            write_seed(&bytes("48 65 6C 6C 6F 21 DE AD BE EF")).to_bytes(),
            bytes("84 C5 01 00 14 E3 7E 18 53 46 F9 F5 57 2F 82 3C DF 83 FA 4F 9F BB E3 81 DA")
        );
        // Zero-extended to 20 bytes (TOTPtokutil / keyroost style).
        let mut extended = bytes("48 65 6C 6C 6F 21 DE AD BE EF");
        extended.resize(20, 0);
        let mut padded = extended.clone();
        padded.push(0x80);
        padded.resize(32, 0);
        assert_eq!(crypto::pad_always(&extended).to_vec(), padded);
        assert_eq!(
            write_seed(&extended).to_bytes(),
            bytes(
                "84 C5 01 00 24 31 62 10 5F C9 B6 70 95 C8 04 B1 D4 FE 05 EF CF
                 8B EA 57 67 D1 DF 80 AE 79 4C 81 9D 4F 7C 84 3C D7 C9 E1 28"
            )
        );
        // A 32-byte seed always padded: body 48, Lc 34, MAC header Lc' 30.
        assert_eq!(write_seed(&[9; 32]).to_bytes()[4], 0x34);
    }

    #[test]
    fn models_by_prefix() {
        let c302 = model_for_serial("86596320000017").unwrap();
        assert_eq!((c302.name, c302.restricted_sync), ("C302-i", false));
        let p2 = model_for_serial("86596220000001").unwrap();
        assert_eq!((p2.name, p2.restricted_sync), ("OTPC-P2-i", true));
        assert!(model_for_serial("8659620000001").is_none());
        assert!(model_for_serial("826658719844499").is_none());
        assert!(known_prefixes().contains("8659600 miniOTP-2-i"));
    }
}

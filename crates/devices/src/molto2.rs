//! The Molto-2 protocol (spec §3): APDU builders and response parsers.
//!
//! Pure functions: a builder turns values into a [`Command`], a parser turns
//! response data into values or a [`ParseError`]. Profiles are 0-based on the
//! wire (P2), 0..99 on a Molto-2 v2.

use zeroize::Zeroizing;

use crate::apdu::Command;
use crate::crypto::{self, DeviceKey};
use crate::params::{DisplayTimeout, ProfileConfig};

pub const CLA: u8 = 0x80;
pub const INS_INFO: u8 = 0x41;
pub const INS_CHALLENGE: u8 = 0x4B;
pub const INS_ANSWER: u8 = 0xCE;
pub const INS_RESET: u8 = 0x56;
pub const INS_DELETE: u8 = 0xE6;
pub const INS_SCREEN: u8 = 0xD8;
pub const INS_SEED: u8 = 0xC5;
pub const INS_TITLE: u8 = 0xD5;
pub const INS_CONFIG: u8 = 0xD4;
pub const INS_CHANGE_KEY: u8 = 0xD7;

/// The public-block tag inside the `95` envelope.
pub const TAG_PROFILE: u8 = 0x70;

/// How a seed is framed before encryption (spec §2.5, §10.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedFraming {
    /// `80` then zeros, a whole extra block when aligned: current Token2, and
    /// the only framing every de-padding rule reads back. oathdesk's choice.
    Always,
    /// Pad only when unaligned (older Token2 script, keyroost).
    IfUnaligned,
}

/// `80 41 00 00 00`: serial and system time.
pub fn info() -> Command {
    Command::header(CLA, INS_INFO, 0, 0, Some(0))
}

/// `80 41 00 pp 01 70`: a profile's public block. Case 3 only — with Le the
/// token answers `6FFB`.
pub fn public_block(profile: u8) -> Command {
    Command::with_data(CLA, INS_INFO, 0, profile, vec![TAG_PROFILE])
}

/// `80 4B 08 00 00`: an 8-byte challenge.
pub fn challenge() -> Command {
    Command::header(CLA, INS_CHALLENGE, 0x08, 0, Some(0))
}

/// `80 CE 00 00 10 …`: the answer to a challenge.
pub fn answer(key: &DeviceKey, challenge: &[u8; 8]) -> Command {
    Command::with_data(
        CLA,
        INS_ANSWER,
        0,
        0,
        crypto::challenge_answer(key, challenge).to_vec(),
    )
    .redacted("challenge answer under the customer key")
}

/// `80 56 00 00 00`: factory reset, committed by ▲ on the token.
pub fn factory_reset() -> Command {
    Command::header(CLA, INS_RESET, 0, 0, Some(0))
}

/// `80 E6 00 pp 00`: delete a profile's seed (title and settings stay).
pub fn delete_seed(profile: u8) -> Command {
    Command::header(CLA, INS_DELETE, 0, profile, Some(0))
}

/// `80 D8 0C 02 00`: lock the screen (firmware 2.1+).
pub fn lock_screen() -> Command {
    Command::header(CLA, INS_SCREEN, 0x0C, 0x02, Some(0))
}

/// How the unlock command is framed (spec §3.12, §10.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnlockFraming {
    /// `80 D8 0C 02 01 01` — current Token2 tool and spec.
    Current,
    /// `80 D8 0C 02 01 00` — the older Token2 script.
    Older,
}

/// Unlock the screen (firmware 2.1+).
pub fn unlock_screen(framing: UnlockFraming) -> Command {
    let byte = match framing {
        UnlockFraming::Current => 1,
        UnlockFraming::Older => 0,
    };
    Command::with_data(CLA, INS_SCREEN, 0x0C, 0x02, vec![byte])
}

/// `84 C5 01 pp Lc`: write a seed of 1..63 bytes.
pub fn write_seed(key: &DeviceKey, profile: u8, seed: &[u8], framing: SeedFraming) -> Command {
    let mut body = match framing {
        SeedFraming::Always => crypto::pad_always(seed),
        SeedFraming::IfUnaligned => crypto::pad_if_unaligned(seed),
    };
    crypto::ecb_encrypt(key, &mut body);
    Command::secure(key, INS_SEED, 0x01, profile, &body).redacted("encrypted seed")
}

/// Token2's "delete by all-zero seed" (spec §3.5, §10.2): `len` zero bytes,
/// zero-padded without a `80` marker. oathdesk deletes with `E6` instead;
/// this exists for the simulator's tests of the sentinel.
pub fn write_zero_seed(key: &DeviceKey, profile: u8, len: usize) -> Command {
    let mut body = crypto::pad_zeros(&vec![0u8; len]);
    crypto::ecb_encrypt(key, &mut body);
    Command::secure(key, INS_SEED, 0x01, profile, &body).redacted("encrypted zero seed")
}

/// `84 D5 00 pp 14`: write a title of 1..12 bytes (checked by the caller).
pub fn write_title(key: &DeviceKey, profile: u8, title: &[u8]) -> Command {
    let mut body = crypto::pad_if_unaligned(title);
    crypto::ecb_encrypt(key, &mut body);
    Command::secure(key, INS_TITLE, 0x00, profile, &body)
}

/// The 22-byte configuration TLV (spec §3.7).
pub fn config_tlv(config: &ProfileConfig, time: u32) -> [u8; 22] {
    let t = time.to_be_bytes();
    [
        0x81,
        0x14,
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
        0x09,
        0x0A,
        0x01,
        config.hmac.wire(),
        0x0B,
        0x01,
        config.digits,
        0x0D,
        0x01,
        config.period.wire(),
    ]
}

/// The 8-byte time-only TLV (spec §3.8).
pub fn time_tlv(time: u32) -> [u8; 8] {
    let t = time.to_be_bytes();
    [0x81, 0x06, 0x0F, 0x04, t[0], t[1], t[2], t[3]]
}

/// `84 D4 01 pp 1A`: a profile's configuration, which also sets its clock.
pub fn write_config(key: &DeviceKey, profile: u8, config: &ProfileConfig, time: u32) -> Command {
    Command::secure(key, INS_CONFIG, 0x01, profile, &config_tlv(config, time))
}

/// `84 D4 01 pp 0C`: set one profile's clock.
pub fn sync_time(key: &DeviceKey, profile: u8, time: u32) -> Command {
    Command::secure(key, INS_CONFIG, 0x01, profile, &time_tlv(time))
}

/// The 32-byte plaintext of a key change: `00 || SHA1(new)[0..16] || 80 || 00×14`.
pub fn key_block(new_key: &DeviceKey) -> Zeroizing<[u8; 32]> {
    let mut block = Zeroizing::new([0u8; 32]);
    block[1..17].copy_from_slice(new_key.as_bytes());
    block[17] = 0x80;
    block
}

/// `84 D7 00 00 24`: change the customer key (committed by ▲). Only the
/// derived key travels, encrypted under the current one.
pub fn change_key(key: &DeviceKey, new_key: &DeviceKey) -> Command {
    let mut body = key_block(new_key);
    crypto::ecb_encrypt(key, body.as_mut_slice());
    Command::secure(key, INS_CHANGE_KEY, 0, 0, body.as_slice()).redacted("encrypted new key")
}

// ---------------------------------------------------------------- parsers

/// A response that does not have the documented shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} response: {reason}")]
pub struct ParseError {
    pub what: &'static str,
    pub reason: String,
}

fn malformed(what: &'static str, reason: impl Into<String>) -> ParseError {
    ParseError {
        what,
        reason: reason.into(),
    }
}

/// What the info command reports (both families, spec §3.2 / §4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// ASCII serial (digits on every known token).
    pub serial: String,
    /// The token's clock, Unix seconds UTC.
    pub time: u32,
}

/// Parses `header(3) | N | serial(N) | separator(2) | time(4)`. Header and
/// separator are undocumented and ignored; bytes after the time too.
pub fn parse_info(data: &[u8]) -> Result<DeviceInfo, ParseError> {
    const WHAT: &str = "device info";
    let n = *data
        .get(3)
        .ok_or_else(|| malformed(WHAT, format!("{} byte(s), too short", data.len())))?
        as usize;
    let needed = 4 + n + 2 + 4;
    if data.len() < needed {
        return Err(malformed(
            WHAT,
            format!("serial length {n} needs {needed} bytes, got {}", data.len()),
        ));
    }
    if n == 0 {
        return Err(malformed(WHAT, "empty serial"));
    }
    let serial = &data[4..4 + n];
    if !serial.iter().all(|b| b.is_ascii_graphic()) {
        return Err(malformed(WHAT, "the serial is not printable ASCII"));
    }
    let t = &data[6 + n..10 + n];
    Ok(DeviceInfo {
        serial: String::from_utf8_lossy(serial).into_owned(),
        time: u32::from_be_bytes([t[0], t[1], t[2], t[3]]),
    })
}

/// One profile's public block (spec §3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileBlock {
    /// Observed `20` on a written slot, `00` on an empty one; meaning unknown.
    pub flag: u8,
    /// The title, plaintext, without its zero padding.
    pub title: Vec<u8>,
    /// Time fields A and B (semantics unconfirmed, spec §10.6).
    pub time_a: u32,
    pub time_b: u32,
    /// Raw configuration bytes: HMAC (1/2), step seconds, digits.
    pub hmac: u8,
    pub step: u8,
    pub digits: u8,
    /// Byte 28: the one reliable occupancy indicator.
    pub seed_present: bool,
}

impl ProfileBlock {
    /// The title as text (lossy for bytes that are not UTF-8).
    pub fn title_text(&self) -> String {
        String::from_utf8_lossy(&self.title).into_owned()
    }

    /// The display timeout is not in the block; the configuration that is.
    pub fn config(&self, display_timeout: DisplayTimeout) -> Option<ProfileConfig> {
        Some(ProfileConfig {
            hmac: crate::params::Hmac::from_wire(self.hmac)?,
            digits: self.digits,
            period: crate::params::Period::from_wire(self.step)?,
            display_timeout,
        })
    }
}

/// The 29-byte body of tag `70`.
pub const PROFILE_BODY_LEN: usize = 29;

/// Parses `95 L { … 70 1D body(29) … }`: walks the TLVs inside `95` (as
/// Token2's tool does) and reads the `70` body strictly (as keyroost does).
pub fn parse_public_block(data: &[u8]) -> Result<ProfileBlock, ParseError> {
    const WHAT: &str = "profile block";
    let (&tag, rest) = data.split_first().ok_or_else(|| malformed(WHAT, "empty"))?;
    if tag != 0x95 {
        return Err(malformed(
            WHAT,
            format!("starts with tag {tag:02X}, not 95"),
        ));
    }
    let (&len, mut inner) = rest
        .split_first()
        .ok_or_else(|| malformed(WHAT, "no length after tag 95"))?;
    if inner.len() < usize::from(len) {
        return Err(malformed(
            WHAT,
            format!("tag 95 says {len} bytes, {} follow", inner.len()),
        ));
    }
    inner = &inner[..usize::from(len)];
    while let [tag, len, rest @ ..] = inner {
        let len = usize::from(*len);
        if rest.len() < len {
            return Err(malformed(
                WHAT,
                format!("tag {tag:02X} says {len} bytes, {} follow", rest.len()),
            ));
        }
        let (value, next) = rest.split_at(len);
        if *tag == TAG_PROFILE {
            return parse_profile_body(value);
        }
        inner = next;
    }
    Err(malformed(WHAT, "no tag 70 inside tag 95"))
}

fn parse_profile_body(body: &[u8]) -> Result<ProfileBlock, ParseError> {
    const WHAT: &str = "profile block";
    if body.len() != PROFILE_BODY_LEN {
        return Err(malformed(
            WHAT,
            format!("tag 70 holds {} bytes, not {PROFILE_BODY_LEN}", body.len()),
        ));
    }
    let title_raw = &body[1..17];
    let title_end = title_raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let u32_at = |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
    let seed_present = match body[28] {
        0 => false,
        1 => true,
        other => {
            return Err(malformed(
                WHAT,
                format!("seed-present byte is {other:02X}, not 00 or 01"),
            ));
        }
    };
    Ok(ProfileBlock {
        flag: body[0],
        title: title_raw[..title_end].to_vec(),
        time_a: u32_at(17),
        time_b: u32_at(21),
        hmac: body[25],
        step: body[26],
        digits: body[27],
        seed_present,
    })
}

/// Builds the public block response data (for the simulator and tests).
pub fn encode_public_block(block: &ProfileBlock) -> Vec<u8> {
    let mut data = vec![0x95, 0x1F, TAG_PROFILE, PROFILE_BODY_LEN as u8, block.flag];
    let mut title = [0u8; 16];
    let n = block.title.len().min(16);
    title[..n].copy_from_slice(&block.title[..n]);
    data.extend_from_slice(&title);
    data.extend_from_slice(&block.time_a.to_be_bytes());
    data.extend_from_slice(&block.time_b.to_be_bytes());
    data.extend_from_slice(&[
        block.hmac,
        block.step,
        block.digits,
        u8::from(block.seed_present),
    ]);
    data
}

/// Builds info response data: `00 00 00 | N | serial | 00 00 | time` (the
/// reference firmware's header and separator).
pub fn encode_info(serial: &str, time: u32) -> Vec<u8> {
    let mut data = vec![0, 0, 0, serial.len() as u8];
    data.extend_from_slice(serial.as_bytes());
    data.extend_from_slice(&[0, 0]);
    data.extend_from_slice(&time.to_be_bytes());
    data
}

/// Parses the 8-byte challenge.
pub fn parse_challenge(data: &[u8]) -> Result<[u8; 8], ParseError> {
    data.try_into()
        .map_err(|_| malformed("challenge", format!("{} byte(s), not 8", data.len())))
}

#[cfg(test)]
mod tests {
    //! Spec §5.1 and §5.2, byte for byte.
    use super::*;
    use crate::hex;
    use crate::params::{Hmac, Period};

    const T: u32 = 1_700_000_000;

    fn key() -> DeviceKey {
        DeviceKey::molto2_factory()
    }

    fn bytes(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    fn config(display: DisplayTimeout, hmac: Hmac, digits: u8, period: Period) -> ProfileConfig {
        ProfileConfig {
            hmac,
            digits,
            period,
            display_timeout: display,
        }
    }

    #[test]
    fn plain_commands() {
        assert_eq!(info().to_bytes(), bytes("80 41 00 00 00"));
        assert_eq!(challenge().to_bytes(), bytes("80 4B 08 00 00"));
        assert_eq!(public_block(0).to_bytes(), bytes("80 41 00 00 01 70"));
        assert_eq!(delete_seed(0).to_bytes(), bytes("80 E6 00 00 00"));
        assert_eq!(factory_reset().to_bytes(), bytes("80 56 00 00 00"));
        assert_eq!(lock_screen().to_bytes(), bytes("80 D8 0C 02 00"));
        assert_eq!(
            unlock_screen(UnlockFraming::Current).to_bytes(),
            bytes("80 D8 0C 02 01 01")
        );
        assert_eq!(
            unlock_screen(UnlockFraming::Older).to_bytes(),
            bytes("80 D8 0C 02 01 00")
        );
    }

    #[test]
    fn auth_answer_example() {
        assert_eq!(
            answer(&key(), &[1, 2, 3, 4, 5, 6, 7, 8]).to_bytes(),
            bytes("80 CE 00 00 10 A0 1B A1 16 09 1E 6F BF DB 95 93 6C 9A 2E 3F 48")
        );
    }

    #[test]
    fn config_tlvs_known_answers() {
        // §5.1: config TLV (t=1700000000, disp 2, SHA1, 6, 30 s) and sync TLV.
        let c = config(DisplayTimeout::Secs60, Hmac::Sha1, 6, Period::Secs30);
        assert_eq!(
            config_tlv(&c, T).to_vec(),
            bytes("81141f01020f046553f10086090a01010b01060d011e")
        );
        assert_eq!(time_tlv(T).to_vec(), bytes("81060f046553f100"));
    }

    #[test]
    fn config_example_profile_0() {
        let c = config(DisplayTimeout::Secs30, Hmac::Sha1, 6, Period::Secs30);
        assert_eq!(
            config_tlv(&c, T).to_vec(),
            bytes("81 14 1F 01 01 0F 04 65 53 F1 00 86 09 0A 01 01 0B 01 06 0D 01 1E")
        );
        assert_eq!(
            write_config(&key(), 0, &c, T).to_bytes(),
            bytes(
                "84 D4 01 00 1A 81 14 1F 01 01 0F 04 65 53 F1 00 86 09 0A 01 01
                 0B 01 06 0D 01 1E 54 AB B2 3F"
            )
        );
    }

    #[test]
    fn config_example_profile_99() {
        let c = config(DisplayTimeout::Secs15, Hmac::Sha256, 8, Period::Secs60);
        assert_eq!(
            write_config(&key(), 99, &c, T).to_bytes(),
            bytes(
                "84 D4 01 63 1A 81 14 1F 01 00 0F 04 65 53 F1 00 86 09 0A 01 02
                 0B 01 08 0D 01 3C C8 93 ED 3D"
            )
        );
    }

    #[test]
    fn seed_example() {
        let seed = bytes("48 65 6C 6C 6F 21 DE AD BE EF");
        assert_eq!(
            crypto::pad_always(&seed).to_vec(),
            bytes("48 65 6C 6C 6F 21 DE AD BE EF 80 00 00 00 00 00")
        );
        let command = write_seed(&key(), 0, &seed, SeedFraming::Always);
        assert_eq!(
            command.to_bytes(),
            bytes("84 C5 01 00 14 54 6A E3 CF FA 12 55 44 7D D0 F3 F6 78 52 24 76 99 70 B8 A2")
        );
        // The MAC input as the spec writes it.
        assert_eq!(
            crypto::cbc_mac(
                &key(),
                &bytes("80 C5 01 00 10 54 6A E3 CF FA 12 55 44 7D D0 F3 F6 78 52 24 76")
            )
            .to_vec(),
            bytes("99 70 B8 A2")
        );
        assert_eq!(command.redact, Some("encrypted seed"));
    }

    #[test]
    fn seed_lengths_and_framings() {
        // §3.5: body sizes under always-pad, and pad-if-unaligned for 16/32/48.
        for (len, lc) in [
            (1, 0x14),
            (15, 0x14),
            (16, 0x24),
            (31, 0x24),
            (32, 0x34),
            (48, 0x44),
            (63, 0x44),
        ] {
            let command = write_seed(&key(), 0, &vec![1; len], SeedFraming::Always);
            assert_eq!(command.to_bytes()[4], lc, "seed length {len}");
        }
        for (len, lc) in [(16, 0x14), (32, 0x24), (48, 0x34)] {
            let command = write_seed(&key(), 0, &vec![1; len], SeedFraming::IfUnaligned);
            assert_eq!(command.to_bytes()[4], lc, "seed length {len}");
        }
        // The maximum APDU is 73 bytes, a short APDU.
        assert_eq!(
            write_seed(&key(), 0, &[1; 63], SeedFraming::Always)
                .to_bytes()
                .len(),
            73
        );
    }

    /// §5.1: set_seed profile 7, 20 zero bytes, 80-padded.
    #[test]
    fn zero_seed_profile_7_known_answer() {
        let command = write_seed(&key(), 7, &[0; 20], SeedFraming::Always);
        assert_eq!(
            command.to_bytes(),
            bytes(
                "84 C5 01 07 24 14cc24b0cc984da7612c0799d350e38c 2c6ddd4f3d6531076ed6b99875607d58 cc52b85c"
            )
        );
    }

    /// §5.2: Token2's "delete" via an all-zero seed, zero-padded.
    #[test]
    fn zero_seed_delete_sentinel() {
        assert_eq!(
            write_zero_seed(&key(), 0, 20).to_bytes(),
            bytes(
                "84 C5 01 00 24 14 CC 24 B0 CC 98 4D A7 61 2C 07 99 D3 50 E3 8C
                 14 CC 24 B0 CC 98 4D A7 61 2C 07 99 D3 50 E3 8C 9E 82 5E 8E"
            )
        );
    }

    #[test]
    fn title_examples() {
        // §5.2: "Example" on profile 0.
        assert_eq!(
            crypto::pad_if_unaligned(b"Example").to_vec(),
            bytes("45 78 61 6D 70 6C 65 80 00 00 00 00 00 00 00 00")
        );
        assert_eq!(
            write_title(&key(), 0, b"Example").to_bytes(),
            bytes("84 D5 00 00 14 B7 63 4B 2E F5 EF 20 66 60 52 27 BD 56 E6 C7 A6 CE 92 3A E5")
        );
        // §5.1: "hello" on profile 3.
        assert_eq!(
            write_title(&key(), 3, b"hello").to_bytes(),
            bytes("84 D5 00 03 14 aa6492e824df9e2be60917d1226ae896 5af94611")
        );
    }

    #[test]
    fn time_sync_examples() {
        assert_eq!(
            sync_time(&key(), 0, T).to_bytes(),
            bytes("84 D4 01 00 0C 81 06 0F 04 65 53 F1 00 90 85 71 19")
        );
        assert_eq!(
            sync_time(&key(), 99, T).to_bytes(),
            bytes("84 D4 01 63 0C 81 06 0F 04 65 53 F1 00 BA 39 E6 3E")
        );
        // §5.1: sync_time profile 0, t = 66123456.
        assert_eq!(
            sync_time(&key(), 0, 0x6612_3456).to_bytes(),
            bytes("84 D4 01 00 0C 81 06 0F 04 66 12 34 56 42 30 47 90")
        );
    }

    #[test]
    fn change_key_example() {
        let new_key = DeviceKey::from_customer_key(b"0123456789ABCDEF");
        let block = key_block(&new_key);
        assert_eq!(
            block.to_vec(),
            bytes(
                "00 CE 27 CB 14 10 98 FE B0 07 14 E7 58 64 6B E3 E9 80
                 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
            )
        );
        assert_eq!(
            change_key(&key(), &new_key).to_bytes(),
            bytes(
                "84 D7 00 00 24 64 C7 1A 71 E0 D6 4C 1A EC EB 50 12 C5 03 B2 EE
                 7F 1A 1C 55 EA 56 F4 18 01 BF EB 8E B1 5A CC 96 0E 72 42 39"
            )
        );
    }

    #[test]
    fn response_examples() {
        // §5.2 synthetic response shapes.
        let info =
            bytes("00 00 00 0F 38 32 36 36 35 38 37 31 39 38 34 34 34 39 39 00 00 65 53 F1 00");
        assert_eq!(
            parse_info(&info).unwrap(),
            DeviceInfo {
                serial: "826658719844499".into(),
                time: T
            }
        );
        assert_eq!(encode_info("826658719844499", T), info);
        let public = bytes(
            "95 1F 70 1D 20 45 78 61 6D 70 6C 65 00 00 00 00 00 00 00 00 00 65 53 F1 00
             65 53 F1 00 01 1E 06 01",
        );
        let block = parse_public_block(&public).unwrap();
        assert_eq!(
            block,
            ProfileBlock {
                flag: 0x20,
                title: b"Example".to_vec(),
                time_a: T,
                time_b: T,
                hmac: 1,
                step: 0x1E,
                digits: 6,
                seed_present: true,
            }
        );
        assert_eq!(encode_public_block(&block), public);
        assert_eq!(block.title_text(), "Example");
    }

    #[test]
    fn malformed_responses() {
        assert_eq!(
            parse_info(&[0, 0, 0, 15, b'1']).unwrap_err().to_string(),
            "malformed device info response: serial length 15 needs 25 bytes, got 5"
        );
        assert!(parse_public_block(&[0x95, 0x02, 0x71, 0x00]).is_err());
        assert!(parse_public_block(&[0x95, 0x05, 0x70, 0x1D]).is_err());
        assert!(parse_challenge(&[1, 2, 3]).is_err());
    }
}

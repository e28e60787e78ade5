//! Programming a token: the one code path the CLI, the web console and the
//! tests call.
//!
//! [`Token::connect`] reads the token's identity; [`Token::burn`] writes a
//! profile in the safe order of spec §3.14 (Molto-2: delete if occupied and
//! allowed → config → seed → title → read back) or §4.8 (single-profile:
//! refuse unknown models → config → seed). Every refusal says what is wrong
//! and what to do; none carries a secret.

use oathdesk_otp::{Credential, Secret};

use crate::apdu::{Command, Response, StatusWord};
use crate::crypto::DeviceKey;
use crate::molto2::{self, DeviceInfo, ProfileBlock, SeedFraming, UnlockFraming};
use crate::params::{
    self, DisplayTimeout, Family, ProfileConfig, Unsupported, check_title, wire_time,
};
use crate::single::{self, ChallengeForm, Model};
use crate::transport::{Link, TransportError};

/// What went wrong talking to a token.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(
        "wrong customer key: the token refused it and allows {attempts_left} more attempt(s) before it locks \
         (a factory reset is the only way back from a lost key); nothing was written"
    )]
    WrongKey { attempts_left: u8 },
    #[error(
        "the token refused authentication ({sw}): its key is locked, or this is not a Token2 programmable token"
    )]
    AuthRefused { sw: StatusWord },
    #[error(
        "slot {slot} already holds a seed: pass --overwrite to delete it first, or choose an empty slot"
    )]
    SlotOccupied { slot: u8 },
    #[error("slot {slot} holds no seed: nothing to delete (the token answered 6A83)")]
    SlotEmpty { slot: u8 },
    #[error("slot {slot} does not exist: this token has slots 0 to {}", profiles - 1)]
    NoSuchSlot { slot: u8, profiles: u8 },
    #[error("{0}")]
    Unsupported(#[from] Unsupported),
    #[error(
        "serial {serial} is not a known programmable single-profile model, so oathdesk does not write to it \
         (known prefixes: {known}); non-programmable tokens such as the C202 look the same over NFC"
    )]
    UnknownModel { serial: String, known: String },
    #[error(
        "the {model} clears its seed whenever its clock is set (restricted time sync): setting the time alone \
         would leave it without a seed; re-burn it instead (the vault's seed is written again right after the clock)"
    )]
    RestrictedSync { model: &'static str },
    #[error("the {what} is not supported by {family}")]
    NotSupported {
        what: &'static str,
        family: &'static str,
    },
    #[error("the token refused {command}: status {sw} ({})", sw.meaning())]
    Refused { command: String, sw: StatusWord },
    #[error("the token wants authentication for {command}: give the customer key")]
    NeedsAuth { command: String },
    #[error("{0}")]
    Malformed(#[from] molto2::ParseError),
    #[error("slot {slot} did not read back as written: {reason}")]
    VerifyFailed { slot: u8, reason: String },
    #[error("authenticate before {0}")]
    NotAuthenticated(&'static str),
    #[error("no free slot left on {serial}: every slot holds a seed, or a credential in the vault")]
    NoFreeSlot { serial: String },
    #[error("stopped on request between two burns; nothing is half-written")]
    Stopped,
}

/// What a burn writes: checked against the family when built.
pub struct BurnRequest {
    pub secret: Secret,
    pub config: ProfileConfig,
    /// Molto-2 only: 1..12 bytes shown on the display.
    pub title: Option<String>,
    /// Whether the configuration (and clock) is written before the seed.
    /// `false` is a seed-only write, for single-profile tokens: the clock
    /// and settings stay as they are (see [`BurnRequest::seed_only`]).
    pub with_config: bool,
}

impl BurnRequest {
    /// Checks a credential (and a title) against what `family` can take.
    pub fn new(
        family: Family,
        credential: &Credential,
        title: Option<&str>,
        display_timeout: DisplayTimeout,
    ) -> Result<BurnRequest, Unsupported> {
        let config = ProfileConfig::check(family, credential, display_timeout)?;
        if let Some(title) = title {
            if family == Family::SingleProfile {
                return Err(Unsupported {
                    what: "title",
                    reason: "single-profile tokens have no title; leave --title out".into(),
                });
            }
            check_title(title)?;
        }
        Ok(BurnRequest {
            secret: credential.secret.clone(),
            config,
            title: title.map(str::to_owned),
            with_config: true,
        })
    }

    /// Makes this a seed-only write (single-profile tokens: the vendor's
    /// "seed only"). A Molto-2 burn always writes the configuration with the
    /// seed: change its settings alone with [`Token::write_config`].
    pub fn seed_only(mut self, family: Family) -> Result<BurnRequest, Unsupported> {
        if family == Family::Molto2 {
            return Err(Unsupported {
                what: "seed-only write",
                reason: "a Molto-2 burn writes the slot's configuration with its seed; change settings alone \
                         with 'oathdesk device configure'"
                    .into(),
            });
        }
        self.with_config = false;
        Ok(self)
    }
}

impl std::fmt::Debug for BurnRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BurnRequest")
            .field("config", &self.config)
            .field("title", &self.title)
            .field("with_config", &self.with_config)
            .finish_non_exhaustive()
    }
}

/// What a burn did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BurnReport {
    pub slot: u8,
    /// APDUs this burn sent (authentication not included).
    pub apdus: usize,
    /// Whether an existing seed was deleted first.
    pub replaced: bool,
    /// Molto-2: the profile as read back.
    pub read_back: Option<ProfileBlock>,
    /// Things the user should know (restricted sync, 4/10 digits…).
    pub warnings: Vec<String>,
}

/// A burn that passed its checks and has not written anything yet.
#[derive(Debug)]
pub struct PreparedBurn {
    pub slot: u8,
    /// Whether the slot holds a seed that the burn will delete first.
    pub occupied: bool,
    start: usize,
}

/// A command that the token takes only after ▲ is pressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirmation {
    /// `9060`: waiting for ▲.
    PressButton,
    /// `9000`: the token said done (press ▲ anyway if it shows a prompt).
    Accepted,
}

/// A connected token of either family.
pub struct Token<'a> {
    link: Link<'a>,
    family: Family,
    info: DeviceInfo,
    model: Option<&'static Model>,
    key: Option<DeviceKey>,
    authenticated: bool,
    profiles: u8,
}

/// The Molto-2 v2's profiles.
pub const MOLTO2_PROFILES: u8 = 100;
/// The Molto-2 v1's profiles (0..49). The info response does not tell the
/// two apart; [`Token::connect`] reads slot 50, which only a v2 has.
pub const MOLTO2_V1_PROFILES: u8 = 50;

/// One slot's outcome in a run over many (`sync-time --all`).
#[derive(Debug)]
pub struct SlotOutcome {
    pub slot: u8,
    pub result: Result<(), DeviceError>,
}

fn refused(command: &str, response: &Response) -> DeviceError {
    DeviceError::Refused {
        command: command.to_owned(),
        sw: response.sw,
    }
}

impl<'a> Token<'a> {
    /// Reads the token's identity. `family` when known (the transport may
    /// know it too); otherwise the Molto-2 info command is sent and a serial
    /// with a single-profile model prefix means a single-profile token.
    pub fn connect(mut link: Link<'a>, family: Option<Family>) -> Result<Token<'a>, DeviceError> {
        let family = family.or_else(|| link.transport().family_hint());
        let command = match family {
            Some(Family::SingleProfile) => single::info(),
            _ => molto2::info(),
        };
        let response = link.exchange(&command)?;
        if response.sw != StatusWord::OK {
            return Err(refused("the info command", &response));
        }
        let info = molto2::parse_info(&response.data)?;
        let model = single::model_for_serial(&info.serial);
        let family = family.unwrap_or(if model.is_some() {
            Family::SingleProfile
        } else {
            Family::Molto2
        });
        let profiles = match family {
            Family::Molto2 => probe_profiles(&mut link)?,
            Family::SingleProfile => 1,
        };
        Ok(Token {
            link,
            family,
            profiles,
            model: model.filter(|_| family == Family::SingleProfile),
            info,
            key: None,
            authenticated: false,
        })
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn serial(&self) -> &str {
        &self.info.serial
    }

    /// The token's clock when connected.
    pub fn time(&self) -> u32 {
        self.info.time
    }

    /// The token's clock minus `host_now` at connection (positive: fast).
    pub fn drift(&self, host_now: u64) -> i64 {
        i64::from(self.info.time) - host_now.min(i64::MAX as u64) as i64
    }

    /// The single-profile model, by serial prefix.
    pub fn model(&self) -> Option<&'static Model> {
        self.model
    }

    /// How people call this token ("Molto-2", "OTPC-P2-i", "unknown
    /// single-profile model").
    pub fn model_name(&self) -> &'static str {
        match (self.family, self.model) {
            (Family::Molto2, _) => "Molto-2",
            (Family::SingleProfile, Some(model)) => model.name,
            (Family::SingleProfile, None) => "unknown single-profile model",
        }
    }

    /// Profiles (slots).
    pub fn profiles(&self) -> u8 {
        self.profiles
    }

    /// Overrides the number of profiles (a Molto-2 v1 has 50).
    pub fn set_profiles(&mut self, profiles: u8) {
        if self.family == Family::Molto2 {
            self.profiles = profiles;
        }
    }

    /// APDUs sent so far.
    pub fn apdus(&self) -> usize {
        self.link.apdus()
    }

    /// The transport's description.
    pub fn describe(&self) -> String {
        self.link.describe()
    }

    /// Whether the key in use is the Molto-2 factory key.
    pub fn uses_factory_key(&self) -> bool {
        self.key.as_ref().is_some_and(DeviceKey::is_molto2_factory)
    }

    fn check_slot(&self, slot: u8) -> Result<(), DeviceError> {
        if slot >= self.profiles {
            return Err(DeviceError::NoSuchSlot {
                slot,
                profiles: self.profiles,
            });
        }
        Ok(())
    }

    fn molto2_only(&self, what: &'static str) -> Result<(), DeviceError> {
        if self.family != Family::Molto2 {
            return Err(DeviceError::NotSupported {
                what,
                family: "single-profile tokens",
            });
        }
        Ok(())
    }

    fn expect_ok(&mut self, command: &Command, what: &str) -> Result<Response, DeviceError> {
        let response = self.link.exchange(command)?;
        if response.sw != StatusWord::OK {
            return Err(refused(what, &response));
        }
        Ok(response)
    }

    /// A Molto-2 profile's public block (no key needed).
    pub fn slot(&mut self, slot: u8) -> Result<ProfileBlock, DeviceError> {
        self.molto2_only("slot listing")?;
        self.check_slot(slot)?;
        let response = self.expect_ok(
            &molto2::public_block(slot),
            &format!("the read of slot {slot}"),
        )?;
        Ok(molto2::parse_public_block(&response.data)?)
    }

    /// Proves knowledge of the key: the Molto-2's customer key (`None`: the
    /// factory key), or the single-profile tokens' fixed key.
    pub fn authenticate(&mut self, key: Option<DeviceKey>) -> Result<(), DeviceError> {
        let key = match self.family {
            Family::Molto2 => key.unwrap_or_else(DeviceKey::molto2_factory),
            Family::SingleProfile => DeviceKey::single_profile(),
        };
        let challenge_command = match self.family {
            Family::Molto2 => molto2::challenge(),
            Family::SingleProfile => single::challenge(ChallengeForm::Lc),
        };
        let response = self.expect_ok(&challenge_command, "the challenge request")?;
        let challenge = molto2::parse_challenge(&response.data)?;
        let answer = match self.family {
            Family::Molto2 => molto2::answer(&key, &challenge),
            Family::SingleProfile => single::answer(&challenge),
        };
        let response = self.link.exchange(&answer)?;
        self.authenticated = false;
        match response.sw {
            StatusWord::OK => {
                self.authenticated = true;
                self.key = Some(key);
                Ok(())
            }
            sw if self.family == Family::Molto2 && sw.attempts_left().is_some() => {
                Err(DeviceError::WrongKey {
                    attempts_left: sw.sw2(),
                })
            }
            sw => Err(DeviceError::AuthRefused { sw }),
        }
    }

    fn key(&self, what: &'static str) -> Result<&DeviceKey, DeviceError> {
        match (&self.key, self.authenticated) {
            (Some(key), true) => Ok(key),
            _ => Err(DeviceError::NotAuthenticated(what)),
        }
    }

    /// Burns a profile in the safe order and verifies what can be verified.
    /// On a Molto-2 an occupied slot is deleted first only with `overwrite`.
    pub fn burn(
        &mut self,
        slot: u8,
        request: &BurnRequest,
        overwrite: bool,
        now: u64,
    ) -> Result<BurnReport, DeviceError> {
        let prepared = self.prepare_burn(slot, request, overwrite)?;
        self.burn_prepared(prepared, request, now)
    }

    /// Everything a burn checks before its first write: the slot exists,
    /// the key was proven, the model is known, and (Molto-2) whether the
    /// slot is free — an occupied one is refused unless `overwrite`. Nothing
    /// is written; a caller records the burn (in the vault) between this and
    /// [`Token::burn_prepared`].
    pub fn prepare_burn(
        &mut self,
        slot: u8,
        request: &BurnRequest,
        overwrite: bool,
    ) -> Result<PreparedBurn, DeviceError> {
        params::check_seed(request.secret.as_bytes())?;
        let start = self.apdus();
        match self.family {
            Family::Molto2 => {
                self.check_slot(slot)?;
                self.key("a burn")?;
                let before = self.slot(slot)?;
                if before.seed_present && !overwrite {
                    return Err(DeviceError::SlotOccupied { slot });
                }
                Ok(PreparedBurn {
                    slot,
                    occupied: before.seed_present,
                    start,
                })
            }
            Family::SingleProfile => {
                self.require_model()?;
                self.key("a burn")?;
                Ok(PreparedBurn {
                    slot: 0,
                    occupied: false,
                    start,
                })
            }
        }
    }

    /// The writes of a burn checked by [`Token::prepare_burn`].
    pub fn burn_prepared(
        &mut self,
        prepared: PreparedBurn,
        request: &BurnRequest,
        now: u64,
    ) -> Result<BurnReport, DeviceError> {
        let time = wire_time(now)?;
        let mut report = match self.family {
            Family::Molto2 => self.burn_molto2(&prepared, request, time)?,
            Family::SingleProfile => self.burn_single(request, time)?,
        };
        report.apdus = self.apdus() - prepared.start;
        Ok(report)
    }

    fn burn_molto2(
        &mut self,
        prepared: &PreparedBurn,
        request: &BurnRequest,
        time: u32,
    ) -> Result<BurnReport, DeviceError> {
        let slot = prepared.slot;
        let key = self.key("a burn")?.clone();
        let mut warnings = Vec::new();
        if matches!(request.config.digits, 4 | 10) {
            warnings.push(format!(
                "{} digits are accepted by the Molto-2 but how its display shows them is unverified; \
                 compare the first code with 'oathdesk code'",
                request.config.digits
            ));
        }
        let mut replaced = false;
        if prepared.occupied {
            let response = self.link.exchange(&molto2::delete_seed(slot))?;
            match response.sw {
                StatusWord::OK | StatusWord::NOT_FOUND => replaced = true,
                _ => return Err(refused(&format!("the delete of slot {slot}"), &response)),
            }
        }
        self.expect_ok(
            &molto2::write_config(&key, slot, &request.config, time),
            &format!("the configuration of slot {slot}"),
        )?;
        self.expect_ok(
            &molto2::write_seed(&key, slot, request.secret.as_bytes(), SeedFraming::Always),
            &format!("the seed of slot {slot}"),
        )?;
        if let Some(title) = &request.title {
            self.expect_ok(
                &molto2::write_title(&key, slot, title.as_bytes()),
                &format!("the title of slot {slot}"),
            )?;
        }
        let after = self.slot(slot)?;
        verify_block(slot, &after, request)?;
        Ok(BurnReport {
            slot,
            apdus: 0,
            replaced,
            read_back: Some(after),
            warnings,
        })
    }

    fn burn_single(&mut self, request: &BurnRequest, time: u32) -> Result<BurnReport, DeviceError> {
        let model = self.require_model()?;
        self.key("a burn")?;
        let mut warnings = Vec::new();
        if model.restricted_sync {
            warnings.push(format!(
                "the {} has restricted time sync: any later clock or configuration write clears its seed, \
                 so the clock set now is the one it keeps (re-burn to correct it)",
                model.name
            ));
        }
        if request.with_config {
            self.expect_ok(
                &single::write_config(&request.config, time),
                "the configuration",
            )?;
            // A real token may end the session after a config write (spec
            // §4.6; Token2's reference host test does the same): prove the
            // key again before the seed.
            self.authenticate(None)?;
        }
        self.expect_ok(&single::write_seed(request.secret.as_bytes()), "the seed")?;
        Ok(BurnReport {
            slot: 0,
            apdus: 0,
            replaced: false,
            read_back: None,
            warnings,
        })
    }

    fn require_model(&self) -> Result<&'static Model, DeviceError> {
        self.model.ok_or_else(|| DeviceError::UnknownModel {
            serial: self.info.serial.clone(),
            known: single::known_prefixes(),
        })
    }

    /// Deletes a Molto-2 profile's seed (title and settings stay). Works
    /// without authentication on the hardware keyroost tested; a token that
    /// wants it answers [`DeviceError::NeedsAuth`].
    pub fn delete(&mut self, slot: u8) -> Result<(), DeviceError> {
        self.molto2_only("delete command")?;
        self.check_slot(slot)?;
        let response = self.link.exchange(&molto2::delete_seed(slot))?;
        match response.sw {
            StatusWord::OK => Ok(()),
            StatusWord::NOT_FOUND => Err(DeviceError::SlotEmpty { slot }),
            sw if sw.sw1() == 0x69 && !self.authenticated => Err(DeviceError::NeedsAuth {
                command: format!("the delete of slot {slot}"),
            }),
            _ => Err(refused(&format!("the delete of slot {slot}"), &response)),
        }
    }

    /// Sets a Molto-2 profile's clock to `now` (the seed stays).
    pub fn sync_time(&mut self, slot: u8, now: u64) -> Result<(), DeviceError> {
        self.molto2_only("time sync of one slot")?;
        self.check_slot(slot)?;
        let key = self.key("a time sync")?.clone();
        let time = wire_time(now)?;
        self.expect_ok(
            &molto2::sync_time(&key, slot, time),
            &format!("the time sync of slot {slot}"),
        )?;
        Ok(())
    }

    /// Sets the clocks of `slots` to `time()` each, carrying on past a slot
    /// the token refuses (as Token2's script does), one outcome per slot. A
    /// lost connection ends the run: the slots after it are not tried (the
    /// outcomes are then fewer than `slots`).
    pub fn sync_time_slots(&mut self, slots: &[u8], time: &dyn Fn() -> u64) -> Vec<SlotOutcome> {
        let mut outcomes = Vec::with_capacity(slots.len());
        for &slot in slots {
            let result = self.sync_time(slot, time());
            let lost = matches!(result, Err(DeviceError::Transport(_)));
            outcomes.push(SlotOutcome { slot, result });
            if lost {
                break;
            }
        }
        outcomes
    }

    /// Config only: changes a profile's algorithm, digits, period and
    /// display time-out without a new seed. The write carries the clock
    /// (set to `now`). A Molto-2 slot is read back: settings as written,
    /// and a seed that was there is still there. A restricted-sync
    /// single-profile token is refused: the write would clear its seed.
    pub fn write_config(
        &mut self,
        slot: u8,
        config: &ProfileConfig,
        now: u64,
    ) -> Result<Option<ProfileBlock>, DeviceError> {
        let time = wire_time(now)?;
        match self.family {
            Family::Molto2 => {
                self.check_slot(slot)?;
                let key = self.key("a configuration write")?.clone();
                let before = self.slot(slot)?;
                self.expect_ok(
                    &molto2::write_config(&key, slot, config, time),
                    &format!("the configuration of slot {slot}"),
                )?;
                let after = self.slot(slot)?;
                let fail = |reason: String| DeviceError::VerifyFailed { slot, reason };
                let expected = (config.hmac.wire(), config.period.wire(), config.digits);
                if (after.hmac, after.step, after.digits) != expected {
                    return Err(fail(format!(
                        "HMAC/step/digits are {:02X}/{:02X}/{}, {:02X}/{:02X}/{} was written",
                        after.hmac, after.step, after.digits, expected.0, expected.1, expected.2
                    )));
                }
                if before.seed_present && !after.seed_present {
                    return Err(fail(
                        "the token cleared the seed when its configuration was written: burn the slot again".into(),
                    ));
                }
                Ok(Some(after))
            }
            Family::SingleProfile => {
                let model = self.require_model()?;
                if model.restricted_sync {
                    return Err(DeviceError::RestrictedSync { model: model.name });
                }
                self.key("a configuration write")?;
                self.expect_ok(&single::write_config(config, time), "the configuration")?;
                Ok(None)
            }
        }
    }

    /// Title only: writes a Molto-2 slot's title (1..12 bytes) and reads it
    /// back; the seed and settings stay.
    pub fn write_title(&mut self, slot: u8, title: &str) -> Result<ProfileBlock, DeviceError> {
        self.molto2_only("title")?;
        self.check_slot(slot)?;
        check_title(title)?;
        let key = self.key("a title write")?.clone();
        self.expect_ok(
            &molto2::write_title(&key, slot, title.as_bytes()),
            &format!("the title of slot {slot}"),
        )?;
        let after = self.slot(slot)?;
        if after.title != title.as_bytes() {
            return Err(DeviceError::VerifyFailed {
                slot,
                reason: format!(
                    "the title reads '{}', '{}' was written",
                    after.title_text().escape_default(),
                    title.escape_default()
                ),
            });
        }
        Ok(after)
    }

    /// Sets a single-profile token's clock, which means writing its whole
    /// configuration. On a restricted-sync model that clears the seed, so
    /// the seed must come along (`reburn`), written right after.
    pub fn sync_time_single(
        &mut self,
        config: &ProfileConfig,
        reburn: Option<&BurnRequest>,
        now: u64,
    ) -> Result<(), DeviceError> {
        if self.family != Family::SingleProfile {
            return Err(DeviceError::NotSupported {
                what: "whole-token time sync",
                family: "the Molto-2 (sync its slots)",
            });
        }
        let model = self.require_model()?;
        if model.restricted_sync && reburn.is_none() {
            return Err(DeviceError::RestrictedSync { model: model.name });
        }
        self.key("a time sync")?;
        match reburn {
            Some(request) => {
                self.burn_single(request, wire_time(now)?)?;
            }
            None => {
                self.expect_ok(
                    &single::write_config(config, wire_time(now)?),
                    "the configuration",
                )?;
            }
        }
        Ok(())
    }

    /// Changes the Molto-2 customer key; committed when ▲ is pressed.
    pub fn set_key(&mut self, new_key: &DeviceKey) -> Result<Confirmation, DeviceError> {
        self.molto2_only("customer key")?;
        let key = self.key("a key change")?.clone();
        let response = self.link.exchange(&molto2::change_key(&key, new_key))?;
        confirmation("the key change", &response)
    }

    /// Asks for a factory reset (no key needed); committed when ▲ is pressed.
    pub fn factory_reset(&mut self) -> Result<Confirmation, DeviceError> {
        self.molto2_only("factory reset")?;
        let response = self.link.exchange(&molto2::factory_reset())?;
        confirmation("the factory reset", &response)
    }

    /// Locks the screen (firmware 2.1+).
    pub fn lock(&mut self) -> Result<(), DeviceError> {
        self.molto2_only("screen lock")?;
        self.expect_ok(&molto2::lock_screen(), "the screen lock")?;
        Ok(())
    }

    /// Unlocks the screen: the current framing, and the older one if the
    /// token refuses that (spec §10.4).
    pub fn unlock(&mut self) -> Result<UnlockFraming, DeviceError> {
        self.molto2_only("screen unlock")?;
        let response = self
            .link
            .exchange(&molto2::unlock_screen(UnlockFraming::Current))?;
        if response.sw == StatusWord::OK {
            return Ok(UnlockFraming::Current);
        }
        if matches!(
            response.sw,
            StatusWord::WRONG_DATA | StatusWord::WRONG_LENGTH
        ) {
            self.expect_ok(
                &molto2::unlock_screen(UnlockFraming::Older),
                "the screen unlock",
            )?;
            return Ok(UnlockFraming::Older);
        }
        Err(refused("the screen unlock", &response))
    }
}

/// How many profiles a Molto-2 has: a v2 answers the public block of slot
/// 50, a v1 (0..49) refuses it. Any refusal means v1; a lost link is an
/// error.
fn probe_profiles(link: &mut Link<'_>) -> Result<u8, DeviceError> {
    let response = link.exchange(&molto2::public_block(MOLTO2_V1_PROFILES))?;
    Ok(if response.sw == StatusWord::OK {
        MOLTO2_PROFILES
    } else {
        MOLTO2_V1_PROFILES
    })
}

fn confirmation(what: &str, response: &Response) -> Result<Confirmation, DeviceError> {
    match response.sw {
        StatusWord::PRESS_BUTTON => Ok(Confirmation::PressButton),
        StatusWord::OK => Ok(Confirmation::Accepted),
        _ => Err(refused(what, response)),
    }
}

/// Checks a profile read back after a burn against what was written.
fn verify_block(slot: u8, block: &ProfileBlock, request: &BurnRequest) -> Result<(), DeviceError> {
    let fail = |reason: String| DeviceError::VerifyFailed { slot, reason };
    if !block.seed_present {
        return Err(fail("the token reports no seed".into()));
    }
    let config = &request.config;
    let expected = (config.hmac.wire(), config.period.wire(), config.digits);
    let found = (block.hmac, block.step, block.digits);
    if expected != found {
        return Err(fail(format!(
            "HMAC/step/digits are {:02X}/{:02X}/{}, {:02X}/{:02X}/{} was written",
            found.0, found.1, found.2, expected.0, expected.1, expected.2
        )));
    }
    if let Some(title) = &request.title
        && block.title != title.as_bytes()
    {
        return Err(fail(format!(
            "the title reads '{}', '{}' was written",
            block.title_text().escape_default(),
            title.escape_default()
        )));
    }
    Ok(())
}

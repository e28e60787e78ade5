//! The programmer against both simulators: end-to-end codes (spec §5.4),
//! status words, attempt counters, the ▲ button, and every simulator option
//! that stands for an open question of spec §10.

use oathdesk_devices::apdu::StatusWord;
use oathdesk_devices::crypto::DeviceKey;
use oathdesk_devices::molto2;
use oathdesk_devices::params::{DisplayTimeout, Family};
use oathdesk_devices::programmer::{BurnRequest, Confirmation, DeviceError, Token};
use oathdesk_devices::sim::molto2::{
    AtZeroAttempts, ConfigOnOccupied, Depadding, EmptyBlock, UnlockAccepts,
};
use oathdesk_devices::sim::{
    ButtonOutcome, Display, Molto2Options, Molto2Sim, Simulator, SingleOptions, SingleSim,
};
use oathdesk_devices::transport::{Clock, Fault, FaultyTransport, Link, SimTransport};
use oathdesk_otp::{Algorithm, Credential, Digits, Kind, Secret, TimeStep};

const T: u64 = 1_700_000_000;
const SEED: &[u8] = b"Hello!\xDE\xAD\xBE\xEF";

fn molto(options: Molto2Options) -> SimTransport {
    SimTransport::memory(
        Simulator::Molto2(Box::new(Molto2Sim::new("826658719844499", options))),
        Clock::Fixed(T),
    )
}

fn single(serial: &str, options: SingleOptions) -> SimTransport {
    SimTransport::memory(
        Simulator::SingleProfile(Box::new(SingleSim::new(serial, options))),
        Clock::Fixed(T),
    )
}

fn credential(algorithm: Algorithm, digits: u64, period: u64) -> Credential {
    let mut c = Credential::totp(Secret::from_bytes(SEED.to_vec()));
    c.algorithm = algorithm;
    c.digits = Digits::new(digits).unwrap();
    c.kind = Kind::Totp {
        step: TimeStep::new(period, 0).unwrap(),
    };
    c
}

fn request(family: Family, c: &Credential, title: Option<&str>) -> BurnRequest {
    BurnRequest::new(family, c, title, DisplayTimeout::Secs30).unwrap()
}

fn connect(transport: &mut SimTransport) -> Token<'_> {
    Token::connect(Link::new(transport), None).unwrap()
}

fn display(transport: &SimTransport, slot: u8) -> Display {
    transport.simulator.display(slot, T)
}

fn code(text: &str) -> Display {
    Display::Code(text.into())
}

/// Spec §5.4: each parameter set burned into a Molto-2 profile shows the
/// expected code at T = 1700000000; so does the seed zero-extended to 20 bytes.
#[test]
fn molto2_shows_the_spec_codes() {
    let cases = [
        (Algorithm::Sha1, 6, 30, "324550"),
        (Algorithm::Sha1, 8, 30, "02324550"),
        (Algorithm::Sha1, 4, 30, "4550"),
        (Algorithm::Sha1, 10, 30, "1802324550"),
        (Algorithm::Sha256, 6, 30, "049486"),
        (Algorithm::Sha1, 6, 60, "508648"),
    ];
    let mut transport = molto(Molto2Options::default());
    {
        let mut token = connect(&mut transport);
        assert_eq!(token.family(), Family::Molto2);
        assert_eq!(token.serial(), "826658719844499");
        token.authenticate(None).unwrap();
        assert!(token.uses_factory_key());
        for (slot, (algorithm, digits, period, _)) in cases.iter().enumerate() {
            let c = credential(*algorithm, *digits, *period);
            let report = token
                .burn(
                    slot as u8,
                    &request(Family::Molto2, &c, Some("Example")),
                    false,
                    T,
                )
                .unwrap();
            // read + config + seed + title + read back.
            assert_eq!(report.apdus, 5);
            assert_eq!(report.warnings.is_empty(), !matches!(digits, 4 | 10));
            assert_eq!(report.read_back.unwrap().title_text(), "Example");
        }
        let mut zero_extended = credential(Algorithm::Sha1, 6, 30);
        let mut seed = SEED.to_vec();
        seed.resize(20, 0);
        zero_extended.secret = Secret::from_bytes(seed);
        token
            .burn(9, &request(Family::Molto2, &zero_extended, None), false, T)
            .unwrap();
    }
    for (slot, (.., expected)) in cases.iter().enumerate() {
        assert_eq!(
            display(&transport, slot as u8),
            code(expected),
            "slot {slot}"
        );
    }
    assert_eq!(display(&transport, 9), code("324550"));
    assert_eq!(display(&transport, 50), Display::Empty);
}

#[test]
fn single_profile_shows_the_spec_code() {
    for (serial, model) in [
        ("86596320000017", "C302-i"),
        ("86596220000001", "OTPC-P2-i"),
    ] {
        let mut transport = single(serial, SingleOptions::default());
        {
            let mut token = connect(&mut transport);
            assert_eq!(token.family(), Family::SingleProfile);
            assert_eq!(token.model_name(), model);
            token.authenticate(None).unwrap();
            let report = token
                .burn(
                    0,
                    &request(
                        Family::SingleProfile,
                        &credential(Algorithm::Sha1, 6, 30),
                        None,
                    ),
                    false,
                    T,
                )
                .unwrap();
            assert_eq!(
                report.apdus, 4,
                "config, a new challenge and answer (the session may end after a config), seed"
            );
            assert_eq!(report.warnings.len(), usize::from(model == "OTPC-P2-i"));
        }
        assert_eq!(display(&transport, 0), code("324550"), "{model}");
    }
}

/// Spec §4.6: a config write clears the seed on restricted models only; the
/// programmer refuses a bare time sync there and re-burns instead.
#[test]
fn restricted_sync_wipes_the_seed() {
    let c = credential(Algorithm::Sha1, 6, 30);
    let config = request(Family::SingleProfile, &c, None).config;
    for (serial, restricted) in [("86596220000001", true), ("86596000000005", false)] {
        let mut transport = single(serial, SingleOptions::default());
        {
            let mut token = connect(&mut transport);
            token.authenticate(None).unwrap();
            token
                .burn(0, &request(Family::SingleProfile, &c, None), false, T)
                .unwrap();
            let refused = token.sync_time_single(&config, None, T);
            match refused {
                Err(e) => {
                    assert!(restricted);
                    assert_eq!(
                        e.to_string(),
                        "the OTPC-P2-i clears its seed whenever its clock is set (restricted time sync): \
                         setting the time alone would leave it without a seed; re-burn it instead \
                         (the vault's seed is written again right after the clock)"
                    );
                }
                Ok(()) => assert!(!restricted),
            }
        }
        assert_eq!(display(&transport, 0), code("324550"));
        // A raw config write, as another tool would send it.
        let Simulator::SingleProfile(sim) = &mut transport.simulator else {
            unreachable!()
        };
        assert_eq!(raw_authenticated_config(sim, &config), StatusWord::OK);
        let expected = if restricted {
            Display::Empty
        } else {
            code("324550")
        };
        assert_eq!(display(&transport, 0), expected, "{serial}");
        // With the seed coming along, the restricted model keeps working.
        let mut token = connect(&mut transport);
        token.authenticate(None).unwrap();
        token
            .sync_time_single(&config, Some(&request(Family::SingleProfile, &c, None)), T)
            .unwrap();
        drop(token);
        assert_eq!(display(&transport, 0), code("324550"));
    }
}

/// Authenticates on a single-profile simulator and writes a config, as any
/// tool would, returning the status word.
fn raw_authenticated_config(
    sim: &mut SingleSim,
    config: &oathdesk_devices::ProfileConfig,
) -> StatusWord {
    use oathdesk_devices::{apdu::Response, single};
    let challenge = Response::parse(
        &sim.process(&single::challenge(single::ChallengeForm::Le).to_bytes(), T)
            .to_bytes(),
    )
    .unwrap();
    let challenge: [u8; 8] = challenge.data.try_into().unwrap();
    let answer = sim.process(&single::answer(&challenge).to_bytes(), T);
    assert_eq!(answer.sw, StatusWord::OK);
    sim.process(&single::write_config(config, T as u32).to_bytes(), T)
        .sw
}

#[test]
fn single_profile_refuses_unknown_models() {
    let mut transport = single(
        "86596990000001",
        SingleOptions {
            restricted_sync: Some(true),
            ..SingleOptions::default()
        },
    );
    let mut token = Token::connect(Link::new(&mut transport), Some(Family::SingleProfile)).unwrap();
    assert_eq!(token.model_name(), "unknown single-profile model");
    token.authenticate(None).unwrap();
    let error = token
        .burn(
            0,
            &request(
                Family::SingleProfile,
                &credential(Algorithm::Sha1, 6, 30),
                None,
            ),
            false,
            T,
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "serial 86596990000001 is not a known programmable single-profile model, so oathdesk does not write to it \
         (known prefixes: 8659612 OTPC-P1-i, 8659622 OTPC-P2-i, 8659621 OTPC-P2-i-NB, 8659600 miniOTP-2-i, \
         8659601 miniOTP-3-i, 8659609 miniOTP-3-i-NB, 8659610 C301-i, 8659632 C302-i); non-programmable tokens \
         such as the C202 look the same over NFC"
    );
    drop(token);
    let Simulator::SingleProfile(sim) = &transport.simulator else {
        unreachable!()
    };
    assert_eq!(sim.seed, None);
    assert_eq!(
        sim.apdus_received, 3,
        "info, challenge, answer: nothing written"
    );
}

/// Spec §7.1 dispatcher facts on the single-profile simulator.
#[test]
fn single_profile_status_words() {
    let mut sim = SingleSim::new("86596220000001", SingleOptions::default());
    let sw = |sim: &mut SingleSim, bytes: &[u8]| sim.process(bytes, T).sw;
    assert_eq!(sw(&mut sim, &[0x80, 0x41]), StatusWord::WRONG_LENGTH);
    assert_eq!(
        sw(&mut sim, &[0x80, 0x41, 0, 0, 5, 1]),
        StatusWord::WRONG_LENGTH
    );
    assert_eq!(
        sw(&mut sim, &[0x00, 0x41, 0, 0, 0]),
        StatusWord::CLA_NOT_SUPPORTED
    );
    assert_eq!(
        sw(&mut sim, &[0x80, 0x99, 0, 0, 0]),
        StatusWord::INS_NOT_SUPPORTED
    );
    // Answer without a challenge, or of the wrong size: 6A80.
    assert_eq!(
        sw(&mut sim, &[0x80, 0xCE, 0, 0, 1, 0]),
        StatusWord::WRONG_DATA
    );
    // A secure command with Lc < 4.
    assert_eq!(
        sw(&mut sim, &[0x84, 0xD4, 0, 0, 2, 0, 0]),
        StatusWord::WRONG_LENGTH
    );
    // openT2OTP host test: a config with MAC 00000000 is 6983.
    let config = oathdesk_devices::single::config_tlv(
        &request(
            Family::SingleProfile,
            &credential(Algorithm::Sha1, 6, 30),
            None,
        )
        .config,
        0x654F_E600,
    );
    let mut bad = vec![0x84, 0xD4, 0, 0, 0x17];
    bad.extend_from_slice(&config);
    bad.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(sw(&mut sim, &bad), StatusWord::AUTH_BLOCKED);
    // A correct MAC without authentication is 6983 as well.
    let good = oathdesk_devices::single::write_config(
        &request(
            Family::SingleProfile,
            &credential(Algorithm::Sha1, 6, 30),
            None,
        )
        .config,
        0x654F_E600,
    );
    assert_eq!(sw(&mut sim, &good.to_bytes()), StatusWord::AUTH_BLOCKED);
    // Both challenge framings work.
    for form in [
        oathdesk_devices::single::ChallengeForm::Lc,
        oathdesk_devices::single::ChallengeForm::Le,
    ] {
        let response = sim.process(&oathdesk_devices::single::challenge(form).to_bytes(), T);
        assert_eq!((response.sw, response.data.len()), (StatusWord::OK, 8));
    }
    // A wrong answer invalidates the challenge (current firmware: no lockout).
    for _ in 0..10 {
        sim.process(
            &oathdesk_devices::single::challenge(oathdesk_devices::single::ChallengeForm::Lc)
                .to_bytes(),
            T,
        );
        assert_eq!(
            sw(&mut sim, &{
                let mut wrong = vec![0x80, 0xCE, 0, 0, 0x10];
                wrong.extend_from_slice(&[0x55; 16]);
                wrong
            }),
            StatusWord::AUTH_BLOCKED
        );
    }
    assert!(!sim.key_locked);
}

/// Pre-2025 firmware locked the key for good after wrong answers.
#[test]
fn single_profile_old_firmware_lockout() {
    let mut transport = single(
        "86596220000001",
        SingleOptions {
            lockout_after: Some(3),
            ..SingleOptions::default()
        },
    );
    {
        let Simulator::SingleProfile(sim) = &mut transport.simulator else {
            unreachable!()
        };
        for _ in 0..3 {
            sim.process(
                &oathdesk_devices::single::challenge(oathdesk_devices::single::ChallengeForm::Lc)
                    .to_bytes(),
                T,
            );
            let mut wrong = vec![0x80, 0xCE, 0, 0, 0x10];
            wrong.extend_from_slice(&[0x55; 16]);
            sim.process(&wrong, T);
        }
        assert!(sim.key_locked);
    }
    let mut token = connect(&mut transport);
    let error = token.authenticate(None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the token refused authentication (6983): its key is locked, or this is not a Token2 programmable token"
    );
}

#[test]
fn wrong_customer_key_reports_attempts_and_locks() {
    for at_zero in [AtZeroAttempts::LockedUntilReset, AtZeroAttempts::Permanent] {
        let mut transport = molto(Molto2Options {
            attempts: 3,
            at_zero_attempts: at_zero,
            ..Molto2Options::default()
        });
        let wrong = || Some(DeviceKey::from_customer_key(b"not the key"));
        let mut token = connect(&mut transport);
        let error = token.authenticate(wrong()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "wrong customer key: the token refused it and allows 2 more attempt(s) before it locks \
             (a factory reset is the only way back from a lost key); nothing was written"
        );
        // The right key resets the counter.
        token.authenticate(None).unwrap();
        for left in [2, 1, 0] {
            assert!(matches!(
                token.authenticate(wrong()),
                Err(DeviceError::WrongKey { attempts_left }) if attempts_left == left
            ));
        }
        // At zero even the right key is refused.
        assert!(matches!(
            token.authenticate(None),
            Err(DeviceError::AuthRefused {
                sw: StatusWord::AUTH_BLOCKED
            })
        ));
        let reset = token.factory_reset();
        drop(token);
        match at_zero {
            AtZeroAttempts::LockedUntilReset => {
                assert_eq!(reset.unwrap(), Confirmation::PressButton);
                assert_eq!(
                    transport.simulator.press_button(),
                    ButtonOutcome::FactoryReset
                );
                connect(&mut transport).authenticate(None).unwrap();
            }
            AtZeroAttempts::Permanent => {
                assert!(matches!(reset, Err(DeviceError::Refused { .. })));
            }
        }
    }
}

#[test]
fn occupied_slots_and_overwrite_under_every_variant() {
    let first = credential(Algorithm::Sha1, 6, 30);
    let mut second = credential(Algorithm::Sha256, 8, 60);
    second.secret = Secret::from_bytes(b"another seed value!!".to_vec());
    for reject_seed_on_occupied in [false, true] {
        for config_on_occupied in [
            ConfigOnOccupied::Accept,
            ConfigOnOccupied::Reject,
            ConfigOnOccupied::ClearSeed,
        ] {
            let mut transport = molto(Molto2Options {
                reject_seed_on_occupied,
                config_on_occupied,
                ..Molto2Options::default()
            });
            let mut token = connect(&mut transport);
            token.authenticate(None).unwrap();
            token
                .burn(4, &request(Family::Molto2, &first, Some("first")), false, T)
                .unwrap();
            let error = token
                .burn(4, &request(Family::Molto2, &second, None), false, T)
                .unwrap_err();
            assert_eq!(
                error.to_string(),
                "slot 4 already holds a seed: pass --overwrite to delete it first, or choose an empty slot"
            );
            let report = token
                .burn(
                    4,
                    &request(Family::Molto2, &second, Some("second")),
                    true,
                    T,
                )
                .unwrap();
            assert!(report.replaced);
            assert_eq!(
                report.apdus, 6,
                "read, delete, config, seed, title, read back"
            );
            drop(token);
            let expected = oathdesk_otp::Totp::new(
                &second.secret,
                Algorithm::Sha256,
                Digits::EIGHT,
                TimeStep::new(60, 0).unwrap(),
            )
            .generate_at(T)
            .unwrap()
            .to_string();
            assert_eq!(display(&transport, 4), code(&expected));
        }
    }
}

#[test]
fn delete_of_an_empty_slot_is_6a83() {
    for needs_auth in [false, true] {
        let mut transport = molto(Molto2Options {
            delete_needs_auth: needs_auth,
            ..Molto2Options::default()
        });
        let mut token = connect(&mut transport);
        let error = token.delete(12).unwrap_err();
        if needs_auth {
            assert_eq!(
                error.to_string(),
                "the token wants authentication for the delete of slot 12: give the customer key"
            );
            token.authenticate(None).unwrap();
            let error = token.delete(12).unwrap_err();
            assert_eq!(
                error.to_string(),
                "slot 12 holds no seed: nothing to delete (the token answered 6A83)"
            );
        } else {
            assert_eq!(
                error.to_string(),
                "slot 12 holds no seed: nothing to delete (the token answered 6A83)"
            );
            token.authenticate(None).unwrap();
        }
        token
            .burn(
                12,
                &request(
                    Family::Molto2,
                    &credential(Algorithm::Sha1, 6, 30),
                    Some("keep"),
                ),
                false,
                T,
            )
            .unwrap();
        token.delete(12).unwrap();
        // The title survives the delete (spec §3.3).
        let block = token.slot(12).unwrap();
        assert!(!block.seed_present);
        assert_eq!(block.title_text(), "keep");
        assert!(matches!(
            token.delete(100),
            Err(DeviceError::NoSuchSlot {
                slot: 100,
                profiles: 100
            })
        ));
    }
}

#[test]
fn key_change_waits_for_the_button() {
    for confirm_sw in [0x9060, 0x9000] {
        let mut transport = molto(Molto2Options {
            confirm_sw,
            ..Molto2Options::default()
        });
        let new_key = DeviceKey::from_customer_key(b"0123456789ABCDEF");
        {
            let mut token = connect(&mut transport);
            token.authenticate(None).unwrap();
            let confirmation = token.set_key(&new_key).unwrap();
            assert_eq!(
                confirmation,
                if confirm_sw == 0x9060 {
                    Confirmation::PressButton
                } else {
                    Confirmation::Accepted
                }
            );
            // Not committed yet: the factory key still works.
            token.authenticate(None).unwrap();
        }
        assert_eq!(
            transport.simulator.press_button(),
            ButtonOutcome::KeyChanged
        );
        assert_eq!(transport.simulator.press_button(), ButtonOutcome::Nothing);
        let mut token = connect(&mut transport);
        assert!(matches!(
            token.authenticate(None),
            Err(DeviceError::WrongKey { attempts_left: 4 })
        ));
        token.authenticate(Some(new_key.clone())).unwrap();
        assert!(!token.uses_factory_key());
    }
}

#[test]
fn factory_reset_wipes_everything_after_the_button() {
    let mut transport = molto(Molto2Options::default());
    {
        let mut token = connect(&mut transport);
        token.authenticate(None).unwrap();
        token
            .burn(
                0,
                &request(
                    Family::Molto2,
                    &credential(Algorithm::Sha1, 6, 30),
                    Some("x"),
                ),
                false,
                T,
            )
            .unwrap();
        token.set_key(&DeviceKey::from_customer_key(b"k")).unwrap();
    }
    transport.simulator.press_button();
    {
        // The reset works without the key.
        let mut token = connect(&mut transport);
        assert_eq!(token.factory_reset().unwrap(), Confirmation::PressButton);
    }
    assert_eq!(
        display(&transport, 0),
        code("324550"),
        "nothing happens before ▲"
    );
    assert_eq!(
        transport.simulator.press_button(),
        ButtonOutcome::FactoryReset
    );
    assert_eq!(display(&transport, 0), Display::Empty);
    let mut token = connect(&mut transport);
    token.authenticate(None).unwrap();
    assert_eq!(token.slot(0).unwrap().title_text(), "");
}

#[test]
fn seed_depadding_variants() {
    // An unpadded 16-byte seed (older framing) ending in a non-zero byte.
    let seed = [0x11u8; 16];
    for (depadding, expected) in [
        (Depadding::Strict, StatusWord::WRONG_DATA),
        (Depadding::Tolerant, StatusWord::OK),
    ] {
        let mut sim = Molto2Sim::new(
            "1",
            Molto2Options {
                depadding,
                ..Molto2Options::default()
            },
        );
        authenticate_raw(&mut sim);
        let command = molto2::write_seed(
            &DeviceKey::molto2_factory(),
            0,
            &seed,
            molto2::SeedFraming::IfUnaligned,
        );
        assert_eq!(
            sim.process(&command.to_bytes(), T).sw,
            expected,
            "{depadding:?}"
        );
        // Always-padded seeds of every length read back under both rules.
        for len in 1..=63 {
            let seed: Vec<u8> = (1..=len as u8).collect();
            let command = molto2::write_seed(
                &DeviceKey::molto2_factory(),
                1,
                &seed,
                molto2::SeedFraming::Always,
            );
            assert_eq!(sim.process(&command.to_bytes(), T).sw, StatusWord::OK);
            assert_eq!(
                sim.profiles[1].seed.as_deref(),
                Some(seed.as_slice()),
                "length {len}"
            );
        }
    }
}

#[test]
fn zero_seed_sentinel_variants() {
    for (deletes, expected) in [(true, StatusWord::OK), (false, StatusWord::WRONG_DATA)] {
        let mut sim = Molto2Sim::new(
            "1",
            Molto2Options {
                zero_seed_deletes: deletes,
                ..Molto2Options::default()
            },
        );
        authenticate_raw(&mut sim);
        let key = DeviceKey::molto2_factory();
        sim.process(
            &molto2::write_seed(&key, 0, SEED, molto2::SeedFraming::Always).to_bytes(),
            T,
        );
        assert!(sim.profiles[0].seed.is_some());
        assert_eq!(
            sim.process(&molto2::write_zero_seed(&key, 0, 20).to_bytes(), T)
                .sw,
            expected
        );
        assert_eq!(sim.profiles[0].seed.is_none(), deletes);
    }
}

fn authenticate_raw(sim: &mut Molto2Sim) {
    let response = sim.process(&molto2::challenge().to_bytes(), T);
    let challenge: [u8; 8] = response.data.try_into().unwrap();
    let answer = sim.process(
        &molto2::answer(&DeviceKey::molto2_factory(), &challenge).to_bytes(),
        T,
    );
    assert_eq!(answer.sw, StatusWord::OK);
}

#[test]
fn molto2_status_words() {
    for (bad_mac_sw, no_auth_sw) in [(0x6988, 0x6982), (0x6983, 0x6983)] {
        let mut sim = Molto2Sim::new(
            "1",
            Molto2Options {
                bad_mac_sw,
                no_auth_sw,
                ..Molto2Options::default()
            },
        );
        let key = DeviceKey::molto2_factory();
        let seed = molto2::write_seed(&key, 0, SEED, molto2::SeedFraming::Always).to_bytes();
        assert_eq!(sim.process(&seed, T).sw, StatusWord(no_auth_sw));
        authenticate_raw(&mut sim);
        let mut tampered = seed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(sim.process(&tampered, T).sw, StatusWord(bad_mac_sw));
        assert_eq!(sim.process(&seed, T).sw, StatusWord::OK);
    }
    let mut sim = Molto2Sim::new("1", Molto2Options::default());
    // The public block with Le is 6FFB (hardware-verified).
    assert_eq!(
        sim.process(&[0x80, 0x41, 0, 0, 1, 0x70, 0], T).sw,
        StatusWord::PUBLIC_READ_WITH_LE
    );
    assert_eq!(
        sim.process(&[0x80, 0x41, 0, 100, 1, 0x70], T).sw,
        StatusWord::WRONG_P1P2
    );
    assert_eq!(sim.process(&[0x80], T).sw, StatusWord::WRONG_LENGTH);
    assert_eq!(
        sim.process(&[0xA0, 0x41, 0, 0, 0], T).sw,
        StatusWord::CLA_NOT_SUPPORTED
    );
    assert_eq!(
        sim.process(&[0x80, 0x42, 0, 0, 0], T).sw,
        StatusWord::INS_NOT_SUPPORTED
    );
    // A 50-profile Molto-2 (v1).
    let mut v1 = Molto2Sim::new(
        "1",
        Molto2Options {
            profiles: 50,
            ..Molto2Options::default()
        },
    );
    assert_eq!(
        v1.process(&molto2::public_block(49).to_bytes(), T).sw,
        StatusWord::OK
    );
    assert_eq!(
        v1.process(&molto2::public_block(50).to_bytes(), T).sw,
        StatusWord::WRONG_P1P2
    );
}

#[test]
fn screen_lock_and_unlock_framings() {
    for accepts in [
        UnlockAccepts::Current,
        UnlockAccepts::Older,
        UnlockAccepts::Both,
    ] {
        let mut transport = molto(Molto2Options {
            unlock_accepts: accepts,
            ..Molto2Options::default()
        });
        {
            let mut token = connect(&mut transport);
            token.authenticate(None).unwrap();
            token
                .burn(
                    0,
                    &request(Family::Molto2, &credential(Algorithm::Sha1, 6, 30), None),
                    false,
                    T,
                )
                .unwrap();
            token.lock().unwrap();
        }
        assert_eq!(display(&transport, 0), Display::Locked);
        {
            let mut token = connect(&mut transport);
            token.authenticate(None).unwrap();
            let framing = token.unlock().unwrap();
            assert_eq!(
                framing,
                if accepts == UnlockAccepts::Older {
                    molto2::UnlockFraming::Older
                } else {
                    molto2::UnlockFraming::Current
                }
            );
        }
        assert_eq!(display(&transport, 0), code("324550"));
    }
    // Lock needs authentication by default (Token2's tools authenticate first).
    let mut transport = molto(Molto2Options::default());
    let mut token = connect(&mut transport);
    assert!(matches!(
        token.lock(),
        Err(DeviceError::Refused {
            sw: StatusWord(0x6982),
            ..
        })
    ));
}

#[test]
fn per_profile_clocks_and_time_sync() {
    let mut transport = molto(Molto2Options::default());
    {
        let mut token = connect(&mut transport);
        token.authenticate(None).unwrap();
        let c = credential(Algorithm::Sha1, 6, 30);
        token
            .burn(3, &request(Family::Molto2, &c, None), false, T)
            .unwrap();
        token
            .burn(4, &request(Family::Molto2, &c, None), false, T)
            .unwrap();
        // Slot 3's clock set 10 minutes behind the host.
        token.sync_time(3, T - 600).unwrap();
    }
    assert_eq!(display(&transport, 4), code("324550"));
    let behind = oathdesk_otp::Totp::new(
        &Secret::from_bytes(SEED.to_vec()),
        Algorithm::Sha1,
        Digits::SIX,
        TimeStep::DEFAULT,
    )
    .generate_at(T - 600)
    .unwrap()
    .to_string();
    assert_eq!(display(&transport, 3), code(&behind));
    let mut token = connect(&mut transport);
    assert_eq!(
        token.drift(T),
        -600,
        "the system clock follows the last time set"
    );
    let block = token.slot(3).unwrap();
    assert_eq!(block.time_b, (T - 600) as u32);
}

#[test]
fn empty_block_variants_parse() {
    for empty_block in [EmptyBlock::Defaults, EmptyBlock::Zeros] {
        let mut transport = molto(Molto2Options {
            empty_block,
            ..Molto2Options::default()
        });
        let mut token = connect(&mut transport);
        for slot in 0..100 {
            assert!(!token.slot(slot).unwrap().seed_present);
        }
        assert_eq!(token.apdus(), 102, "info, the v1/v2 probe, 100 slots");
    }
}

/// The cable pulled at every APDU of a burn, both before the token carries
/// a command out and after (answer lost): afterwards the slot holds the old
/// seed, no seed, or the new one — and a re-run with --overwrite always
/// finishes the burn.
#[test]
fn transport_lost_at_every_point_of_a_burn() {
    let old = credential(Algorithm::Sha1, 6, 30);
    let mut new = credential(Algorithm::Sha1, 6, 30);
    new.secret = Secret::from_bytes(b"a brand new seed :-)".to_vec());
    let new_code =
        oathdesk_otp::Totp::new(&new.secret, Algorithm::Sha1, Digits::SIX, TimeStep::DEFAULT)
            .generate_at(T)
            .unwrap()
            .to_string();
    for cut in [false, true] {
        for after in 3..=8 {
            let mut transport = molto(Molto2Options::default());
            {
                let mut token = connect(&mut transport);
                token.authenticate(None).unwrap();
                token
                    .burn(7, &request(Family::Molto2, &old, None), false, T)
                    .unwrap();
            }
            // info, challenge, answer, then read, delete, config, seed, title, read back.
            let fault = if cut {
                Fault::CutAfter(after)
            } else {
                Fault::DropAfter(after)
            };
            let mut faulty = FaultyTransport::new(&mut transport, fault);
            let outcome = (|| {
                let mut token = Token::connect(Link::new(&mut faulty), None)?;
                token.authenticate(None)?;
                token.burn(7, &request(Family::Molto2, &new, Some("new")), true, T)
            })();
            let error = outcome.unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("the connection to the token was lost: the USB device is gone"),
                "{error}"
            );
            let _ = faulty.into_inner();
            transport.simulator.power_cycle();
            let shown = display(&transport, 7);
            assert!(
                [code("324550"), Display::Empty, code(&new_code)].contains(&shown),
                "{shown:?}"
            );
            let mut token = connect(&mut transport);
            token.authenticate(None).unwrap();
            token
                .burn(7, &request(Family::Molto2, &new, Some("new")), true, T)
                .unwrap();
            drop(token);
            assert_eq!(
                display(&transport, 7),
                code(&new_code),
                "cut={cut} after={after}"
            );
        }
    }
}

#[test]
fn simulator_files_persist_state_not_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("molto.json");
    {
        let mut transport = SimTransport::open_file(&path, None, None).unwrap();
        transport.clock = Clock::Fixed(T);
        let mut token = connect(&mut transport);
        token.authenticate(None).unwrap();
        token
            .burn(
                2,
                &request(
                    Family::Molto2,
                    &credential(Algorithm::Sha1, 6, 30),
                    Some("file"),
                ),
                false,
                T,
            )
            .unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let mut transport = SimTransport::open_file(&path, Some(Family::Molto2), None).unwrap();
    transport.clock = Clock::Fixed(T);
    assert_eq!(display(&transport, 2), code("324550"));
    // Authentication does not survive reopening (a new USB session).
    let Simulator::Molto2(sim) = &mut transport.simulator else {
        unreachable!()
    };
    let seed = molto2::write_seed(
        &DeviceKey::molto2_factory(),
        5,
        SEED,
        molto2::SeedFraming::Always,
    );
    assert_eq!(
        sim.process(&seed.to_bytes(), T).sw,
        StatusWord::SECURITY_NOT_SATISFIED
    );
    let error = SimTransport::open_file(&path, Some(Family::SingleProfile), None).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("holds a simulated Molto-2, not a single-profile token"),
        "{error}"
    );
}

/// §10.4: a token that locks and unlocks its screen without authentication.
#[test]
fn screen_lock_without_authentication_variant() {
    let mut transport = molto(Molto2Options {
        lock_needs_auth: false,
        ..Molto2Options::default()
    });
    {
        let mut token = connect(&mut transport);
        token.lock().unwrap();
    }
    assert_eq!(display(&transport, 0), Display::Locked);
    connect(&mut transport).unlock().unwrap();
    assert_eq!(display(&transport, 0), Display::Empty);
}

/// The restricted-sync flag overridden both ways on one serial.
#[test]
fn restricted_sync_override_variants() {
    let c = credential(Algorithm::Sha1, 6, 30);
    for restricted in [true, false] {
        // C302-i is unrestricted by the model table.
        let mut transport = single(
            "86596320000017",
            SingleOptions {
                restricted_sync: Some(restricted),
                ..SingleOptions::default()
            },
        );
        {
            let mut token = connect(&mut transport);
            token.authenticate(None).unwrap();
            token
                .burn(0, &request(Family::SingleProfile, &c, None), false, T)
                .unwrap();
        }
        let Simulator::SingleProfile(sim) = &mut transport.simulator else {
            unreachable!()
        };
        assert_eq!(sim.restricted_sync(), restricted);
        let config = request(Family::SingleProfile, &c, None).config;
        assert_eq!(raw_authenticated_config(sim, &config), StatusWord::OK);
        let expected = if restricted {
            Display::Empty
        } else {
            code("324550")
        };
        assert_eq!(display(&transport, 0), expected);
    }
}

/// §10.5: the Molto-2 simulator answers the single-profile info framing
/// (`02 11` data) like its own, as the reference firmware ignores the data.
#[test]
fn info_framings_of_both_families() {
    let mut sim = Molto2Sim::new("826658719844499", Molto2Options::default());
    for command in [molto2::info(), oathdesk_devices::single::info()] {
        let response = sim.process(&command.to_bytes(), T);
        assert_eq!(response.sw, StatusWord::OK);
        assert_eq!(
            molto2::parse_info(&response.data).unwrap().serial,
            "826658719844499"
        );
    }
    let mut single_sim = SingleSim::new("86596220000001", SingleOptions::default());
    for command in [molto2::info(), oathdesk_devices::single::info()] {
        let response = single_sim.process(&command.to_bytes(), T);
        assert_eq!(
            molto2::parse_info(&response.data).unwrap().serial,
            "86596220000001"
        );
    }
}

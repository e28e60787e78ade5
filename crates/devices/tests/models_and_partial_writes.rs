//! Issue 15, items 5–10 and 15, against the simulators: Molto-2 v1 and v2,
//! runs over many slots that carry on, partial writes, clocks set to a
//! given time, re-authentication between config and seed, and simulators
//! that are distinct tokens with consistent clocks.

use std::cell::RefCell;

use oathdesk_devices::params::{DisplayTimeout, Family, ProfileConfig};
use oathdesk_devices::programmer::{BurnRequest, DeviceError, Token};
use oathdesk_devices::sim::{
    Display, Molto2Options, Molto2Sim, Simulator, SingleOptions, SingleSim,
};
use oathdesk_devices::transport::{Clock, Link, SimTransport, TraceDirection};
use oathdesk_otp::{Algorithm, Credential, Digits, Kind, Secret, TimeStep, Totp};

const T: u64 = 1_700_000_000;
const SEED: &[u8] = b"Hello!\xDE\xAD\xBE\xEF";

fn molto(profiles: u8) -> SimTransport {
    let options = Molto2Options {
        profiles,
        ..Molto2Options::default()
    };
    SimTransport::memory(
        Simulator::Molto2(Box::new(Molto2Sim::new("826658719844499", options))),
        Clock::Fixed(T),
    )
}

fn single(serial: &str) -> SimTransport {
    SimTransport::memory(
        Simulator::SingleProfile(Box::new(SingleSim::new(serial, SingleOptions::default()))),
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

fn request(family: Family, c: &Credential) -> BurnRequest {
    BurnRequest::new(family, c, None, DisplayTimeout::Secs30).unwrap()
}

fn config(c: &Credential, family: Family, display: DisplayTimeout) -> ProfileConfig {
    ProfileConfig::check(family, c, display).unwrap()
}

fn code_at(c: &Credential, time: u64) -> Display {
    let Kind::Totp { step } = c.kind else {
        unreachable!()
    };
    Display::Code(
        Totp::new(&c.secret, c.algorithm, c.digits, step)
            .generate_at(time)
            .unwrap()
            .to_string(),
    )
}

/// Item 5: a v1 answers no slot above 49, and oathdesk offers none.
#[test]
fn molto2_v1_is_told_from_v2() {
    let mut v1 = molto(50);
    let mut token = Token::connect(Link::new(&mut v1), None).unwrap();
    assert_eq!(token.profiles(), 50);
    assert!(matches!(
        token.slot(50),
        Err(DeviceError::NoSuchSlot {
            slot: 50,
            profiles: 50
        })
    ));
    assert!(token.slot(49).is_ok());
    let mut v2 = molto(100);
    let token = Token::connect(Link::new(&mut v2), None).unwrap();
    assert_eq!(token.profiles(), 100);
}

/// Item 5: a run over many slots carries on past one the token refuses,
/// and says which.
#[test]
fn sync_over_many_slots_carries_on_past_a_refusal() {
    let mut v1 = molto(50);
    let mut token = Token::connect(Link::new(&mut v1), None).unwrap();
    // As if told it had 100 (an older oathdesk did): the token refuses 50.
    token.set_profiles(100);
    token.authenticate(None).unwrap();
    let outcomes = token.sync_time_slots(&[48, 50, 49], &|| T - 60);
    let summary: Vec<(u8, bool)> = outcomes
        .iter()
        .map(|o| (o.slot, o.result.is_ok()))
        .collect();
    assert_eq!(summary, [(48, true), (50, false), (49, true)]);
    assert!(matches!(
        outcomes[1].result,
        Err(DeviceError::Refused { .. })
    ));
    assert_eq!(token.slot(49).unwrap().time_b, (T - 60) as u32);
}

/// Items 6 and 7: config only and title only on a Molto-2 slot keep its
/// seed; the codes follow the new settings; a clock set to a given time.
#[test]
fn molto2_config_only_and_title_only() {
    let mut transport = molto(100);
    let sha1_30 = credential(Algorithm::Sha1, 6, 30);
    let sha1_60 = credential(Algorithm::Sha1, 6, 60);
    {
        let mut token = Token::connect(Link::new(&mut transport), None).unwrap();
        token.authenticate(None).unwrap();
        token
            .burn(3, &request(Family::Molto2, &sha1_30), false, T)
            .unwrap();
        let block = token
            .write_config(
                3,
                &config(&sha1_60, Family::Molto2, DisplayTimeout::Secs60),
                T,
            )
            .unwrap()
            .unwrap();
        assert!(block.seed_present);
        assert_eq!(block.step, 60);
        let block = token.write_title(3, "Fabrikam").unwrap();
        assert_eq!(block.title_text(), "Fabrikam");
        assert!(block.seed_present);
    }
    // Spec §5.4: the same seed with a 60 s step shows 508648 at T.
    assert_eq!(
        transport.simulator.display(3, T),
        Display::Code("508648".into())
    );
    assert_eq!(code_at(&sha1_60, T), Display::Code("508648".into()));
    let Simulator::Molto2(sim) = &transport.simulator else {
        unreachable!()
    };
    assert_eq!(sim.profiles[3].config.unwrap().display_timeout, 2);
    // Item 7: the clock of one slot set to a given time.
    let mut token = Token::connect(Link::new(&mut transport), None).unwrap();
    token.authenticate(None).unwrap();
    token.sync_time(3, T + 3600).unwrap();
    drop(token);
    assert_eq!(
        transport.simulator.display(3, T),
        code_at(&sha1_60, T + 3600)
    );
}

/// Item 6: on single-profile tokens, config only (refused where it would
/// clear the seed) and seed only (clock and settings untouched).
#[test]
fn single_profile_config_only_and_seed_only() {
    let c = credential(Algorithm::Sha1, 6, 30);
    let sha256 = credential(Algorithm::Sha256, 6, 30);
    // C302-i: unrestricted sync, the seed survives a config write.
    let mut c302 = single("86596320000017");
    {
        let mut token = Token::connect(Link::new(&mut c302), None).unwrap();
        token.authenticate(None).unwrap();
        token
            .burn(0, &request(Family::SingleProfile, &c), false, T)
            .unwrap();
        let cfg = config(&sha256, Family::SingleProfile, DisplayTimeout::Secs120);
        assert_eq!(token.write_config(0, &cfg, T).unwrap(), None);
    }
    // Spec §5.4: SHA-256 of the same seed shows 049486 at T.
    assert_eq!(c302.simulator.display(0, T), Display::Code("049486".into()));
    // OTPC-P2-i: restricted, a config write would clear the seed: refused.
    let mut p2 = single("86596220000001");
    {
        let mut token = Token::connect(Link::new(&mut p2), None).unwrap();
        token.authenticate(None).unwrap();
        token
            .burn(0, &request(Family::SingleProfile, &c), false, T)
            .unwrap();
        let cfg = config(&sha256, Family::SingleProfile, DisplayTimeout::Secs30);
        assert!(matches!(
            token.write_config(0, &cfg, T),
            Err(DeviceError::RestrictedSync { .. })
        ));
    }
    assert_eq!(p2.simulator.display(0, T), Display::Code("324550".into()));
    // Seed only: the token's clock (10 minutes behind) and display time-out stay.
    let Simulator::SingleProfile(sim) = &mut p2.simulator else {
        unreachable!()
    };
    sim.clock_offset = -600;
    sim.display_timeout = 3;
    let mut other = credential(Algorithm::Sha1, 6, 30);
    other.secret = Secret::from_bytes(b"another seed!".to_vec());
    {
        let mut token = Token::connect(Link::new(&mut p2), None).unwrap();
        token.authenticate(None).unwrap();
        let seed_only = request(Family::SingleProfile, &other)
            .seed_only(Family::SingleProfile)
            .unwrap();
        let report = token.burn(0, &seed_only, false, T).unwrap();
        assert_eq!(report.apdus, 1, "the seed alone");
    }
    assert_eq!(p2.simulator.display(0, T), code_at(&other, T - 600));
    let Simulator::SingleProfile(sim) = &p2.simulator else {
        unreachable!()
    };
    assert_eq!((sim.clock_offset, sim.display_timeout), (-600, 3));
    assert!(
        request(Family::Molto2, &c)
            .seed_only(Family::Molto2)
            .is_err()
    );
}

/// Item 10: a single-profile burn proves the key again between the
/// configuration and the seed, as Token2's reference host test does.
#[test]
fn single_profile_burn_reauthenticates_between_config_and_seed() {
    let mut transport = single("86596220000001");
    let sent = RefCell::new(Vec::new());
    {
        let link = Link::new(&mut transport).with_trace(|direction, text| {
            if direction == TraceDirection::Command {
                sent.borrow_mut()
                    .push(text.chars().take(5).collect::<String>());
            }
        });
        let mut token = Token::connect(link, None).unwrap();
        token.authenticate(None).unwrap();
        sent.borrow_mut().clear();
        token
            .burn(
                0,
                &request(Family::SingleProfile, &credential(Algorithm::Sha1, 6, 30)),
                false,
                T,
            )
            .unwrap();
    }
    assert_eq!(
        sent.into_inner(),
        ["84 D4", "80 4B", "80 CE", "84 C5"],
        "config, challenge, answer, seed"
    );
}

/// Item 9: an all-zero seed (Token2's "delete") and a too-short one are
/// refused before anything is written.
#[test]
fn zero_and_short_seeds_never_reach_the_token() {
    let mut zero = credential(Algorithm::Sha1, 6, 30);
    zero.secret = Secret::from_bytes(vec![0; 20]);
    let refusal =
        BurnRequest::new(Family::Molto2, &zero, None, DisplayTimeout::Secs30).unwrap_err();
    assert!(refusal.to_string().contains("delete"), "{refusal}");
    let mut short = zero.clone();
    short.secret = Secret::from_bytes(vec![1; 5]);
    assert!(BurnRequest::new(Family::SingleProfile, &short, None, DisplayTimeout::Secs30).is_err());
}

/// Item 15: every new simulator is another token, and moving its system
/// clock moves the codes and slot clocks with what info reports.
#[test]
fn simulators_have_fresh_serials_and_one_clock() {
    let a = Simulator::new(Family::Molto2, None);
    let b = Simulator::new(Family::Molto2, None);
    assert_ne!(a.serial(), b.serial());
    assert_eq!(a.serial().len(), 15);
    assert!(a.serial().starts_with("8266587"));
    let s = Simulator::new(Family::SingleProfile, None);
    assert!(oathdesk_devices::single::model_for_serial(s.serial()).is_some());
    assert_eq!(Simulator::new(Family::Molto2, Some("123")).serial(), "123");

    let mut transport = molto(100);
    let c = credential(Algorithm::Sha1, 6, 30);
    {
        let mut token = Token::connect(Link::new(&mut transport), None).unwrap();
        token.authenticate(None).unwrap();
        token
            .burn(0, &request(Family::Molto2, &c), false, T)
            .unwrap();
        token
            .burn(1, &request(Family::Molto2, &c), false, T)
            .unwrap();
        token.sync_time(1, T - 300).unwrap();
    }
    let Simulator::Molto2(sim) = &mut transport.simulator else {
        unreachable!()
    };
    // Slot 1 was set last: the system clock is 300 s behind, slot 0 on time.
    sim.set_clock_offset(sim.clock_offset + 900);
    assert_eq!(transport.simulator.display(0, T), code_at(&c, T + 900));
    assert_eq!(transport.simulator.display(1, T), code_at(&c, T + 600));
    let mut token = Token::connect(Link::new(&mut transport), None).unwrap();
    assert_eq!(token.drift(T), 600, "info: the system clock");
    assert_eq!(token.slot(0).unwrap().time_a, (T + 900) as u32);
    assert_eq!(token.slot(1).unwrap().time_a, (T + 600) as u32);
}

//! Burns recorded in a real vault file against a simulated Molto-2: the
//! library path the CLI and the web console share.

use std::cell::Cell;

use oathdesk_devices::params::DisplayTimeout;
use oathdesk_devices::recorded::{self, Provision, ProvisionEvent};
use oathdesk_devices::sim::{Display, Molto2Options, Molto2Sim, Simulator};
use oathdesk_devices::transport::{Clock, Link, SimTransport};
use oathdesk_devices::{DeviceError, Token};
use oathdesk_otp::{Credential, Secret, TimeStep, Totp};
use oathdesk_vault::crypto::KdfParams;
use oathdesk_vault::model::State;
use oathdesk_vault::store::CredentialFilter;
use oathdesk_vault::{Unlock, Vault};

const T: u64 = 1_700_000_000;

fn vault(dir: &tempfile::TempDir) -> oathdesk_vault::Session {
    let path = dir.path().join("vault.db");
    let kdf = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    Vault::create(&path, "alice", b"pass", kdf, T).unwrap();
    Vault::open(&path)
        .unwrap()
        .unlock("alice", Unlock::Passphrase(b"pass"))
        .unwrap()
}

#[test]
fn provisioning_stops_between_users_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = vault(&dir);
    let mut transport = SimTransport::memory(
        Simulator::Molto2(Box::new(Molto2Sim::new(
            "826658719844499",
            Molto2Options::default(),
        ))),
        Clock::Fixed(T),
    );
    let users =
        recorded::parse_users("ann@contoso.com\nben@contoso.com\ncid@contoso.com\n").unwrap();
    let request = Provision {
        users,
        first_slot: 40,
        template: Credential::totp(Secret::from_bytes(vec![0; 20])),
        display_timeout: DisplayTimeout::Secs30,
        issuer: Some("Contoso".into()),
    };
    let burned = Cell::new(0);
    {
        let mut token = Token::connect(Link::new(&mut transport), None).unwrap();
        token.authenticate(None).unwrap();
        let mut on_event = |event: ProvisionEvent<'_>| {
            if let ProvisionEvent::Burned { .. } = event {
                burned.set(burned.get() + 1);
            }
        };
        // Ctrl-C after the first user.
        let error = recorded::provision(
            &mut token,
            &mut session,
            &request,
            &|| T,
            &mut on_event,
            &|| burned.get() == 1,
        )
        .unwrap_err();
        assert!(matches!(
            error.error,
            recorded::RecordedError::Device(DeviceError::Stopped)
        ));
        assert_eq!((error.done, error.planned), (1, 3));
        assert_eq!(
            error.to_string(),
            "stopped on request between two burns; nothing is half-written\n\
             1 of 3 user(s) provisioned before this; run the same command again to resume"
        );
    }
    let mut events = Vec::new();
    let summary = {
        let mut token = Token::connect(Link::new(&mut transport), None).unwrap();
        token.authenticate(None).unwrap();
        recorded::provision(
            &mut token,
            &mut session,
            &request,
            &|| T,
            &mut |event| {
                events.push(
                    format!("{event:?}")
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .to_owned(),
                )
            },
            &|| false,
        )
        .unwrap()
    };
    assert_eq!(summary.already_done, 1);
    assert_eq!(summary.burned.len(), 2);
    assert_eq!(
        events,
        [
            "AlreadyDone",
            "Planned",
            "Burning",
            "Burned",
            "Burning",
            "Burned"
        ]
    );
    let tokens = session.tokens(&CredentialFilter::default()).unwrap();
    let placed: Vec<(String, State, Option<String>)> = tokens
        .iter()
        .map(|t| (t.reference(), t.state, t.user.clone()))
        .collect();
    assert_eq!(
        placed,
        [
            (
                "826658719844499:40".into(),
                State::Assigned,
                Some("ann@contoso.com".into())
            ),
            (
                "826658719844499:41".into(),
                State::Assigned,
                Some("ben@contoso.com".into())
            ),
            (
                "826658719844499:42".into(),
                State::Assigned,
                Some("cid@contoso.com".into())
            ),
        ]
    );
    // Each slot shows the code of the vault's secret.
    for info in &tokens {
        let (_, credential) = session
            .reveal(&oathdesk_vault::model::TokenRef::Id(info.id))
            .unwrap();
        assert_eq!(credential.issuer.as_deref(), Some("Contoso"));
        let expected = Totp::new(
            &credential.secret,
            credential.algorithm,
            credential.digits,
            TimeStep::DEFAULT,
        )
        .generate_at(T)
        .unwrap()
        .to_string();
        assert_eq!(
            transport.simulator.display(info.slot.unwrap() as u8, T),
            Display::Code(expected)
        );
    }
    let mut token = Token::connect(Link::new(&mut transport), None).unwrap();
    assert_eq!(token.slot(41).unwrap().title_text(), "ben");
}

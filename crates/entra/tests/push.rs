//! Push, activation, sync, unassign and delete: the vault and the real
//! client against the Graph simulator, including failures half-way.

use std::path::PathBuf;

use oathdesk_entra::auth::{Authenticator, ClientCredential, Endpoints, SignIn, TokenCache};
use oathdesk_entra::graph::Graph;
use oathdesk_entra::http::{Http, RetryPolicy};
use oathdesk_entra::sync::{self, Clock, PushOptions, PushReport};
use oathdesk_entra_sim::{FaultKind, Simulator, permissions};
use oathdesk_otp::{Algorithm, Credential, Digits, Kind, Secret, TimeStep};
use oathdesk_vault::crypto::KdfParams;
use oathdesk_vault::model::{DeviceKind, State, TokenRef};
use oathdesk_vault::store::CredentialFilter;
use oathdesk_vault::{NewToken, Session, Unlock, Vault};
use std::time::Duration;
use zeroize::Zeroizing;

const APP: &str = "app-1";
const SECRET: &str = "s3cret";
const TENANT: &str = oathdesk_entra_sim::TENANT_ID;

struct Desk {
    _dir: tempfile::TempDir,
    path: PathBuf,
    sim: Simulator,
    http: Http,
}

impl Desk {
    fn new() -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        let kdf = KdfParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        };
        Vault::create(&path, "alice", b"pass", kdf, sync::now()).unwrap();
        let sim = Simulator::start();
        sim.add_app(APP, SECRET, &permissions::ALL);
        sim.add_user("bob@contoso.com", false);
        sim.add_user("carol@contoso.com", false);
        let http = Http::new(RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(2),
        });
        Desk {
            _dir: dir,
            path,
            sim,
            http,
        }
    }

    fn session(&self) -> Session {
        Vault::open(&self.path)
            .unwrap()
            .unlock("alice", Unlock::Passphrase(b"pass"))
            .unwrap()
    }

    fn auth(&self) -> Authenticator<'_> {
        let sign_in = SignIn::new(
            &self.http,
            Endpoints::new(&self.sim.url(), &self.sim.url(), TENANT).unwrap(),
            APP,
            Some(ClientCredential::Secret(Zeroizing::new(SECRET.into()))),
        )
        .unwrap();
        Authenticator::new(sign_in, false, TokenCache::default())
    }

    fn push(&self, options: &PushOptions) -> PushReport {
        let auth = self.auth();
        let graph = Graph::new(&self.http, &auth);
        let mut session = self.session();
        sync::push(
            &mut session,
            &graph,
            TENANT,
            &CredentialFilter::default(),
            options,
            &Clock::system(),
        )
        .unwrap()
    }
}

fn token(serial: &str, slot: Option<u32>, byte: u8, user: Option<&str>) -> NewToken {
    NewToken {
        serial: Some(serial.into()),
        slot,
        device_kind: if slot.is_some() {
            DeviceKind::MultiProfile
        } else {
            DeviceKind::Classic
        },
        manufacturer: Some("Token2".into()),
        model: Some("Molto2".into()),
        device_slots: if slot.is_some() { 100 } else { 1 },
        credential: Credential::totp(Secret::from_bytes(vec![byte; 20])),
        label: None,
        user: user.map(str::to_owned),
        state: State::Stock,
    }
}

/// A secret none of whose codes in Entra's ±1 day activation window equals
/// one of the next few codes of the vault secret `[byte; 20]`. (Any other
/// secret has such a code with a chance of about 0.6 %: 5,761 codes of a
/// million. Entra's window is that wide; a test must not depend on luck.)
fn unlike(byte: u8) -> Secret {
    let step = TimeStep::new(30, 0).unwrap();
    let vault = oathdesk_otp::Totp::new(
        &Secret::from_bytes(vec![byte; 20]),
        Algorithm::Sha1,
        Digits::SIX,
        step,
    );
    let now = step.counter_at(sync::now()).unwrap();
    let soon: Vec<String> = (now..now + 4)
        .map(|c| vault.hotp().generate(c).to_string())
        .collect();
    (0u8..)
        .map(|other| Secret::from_bytes(vec![other; 20]))
        .find(|candidate| {
            let totp = oathdesk_otp::Totp::new(candidate, Algorithm::Sha1, Digits::SIX, step);
            candidate.as_bytes() != [byte; 20]
                && (now - 2880..=now + 2884)
                    .all(|c| !soon.contains(&totp.hotp().generate(c).to_string()))
        })
        .unwrap()
}

fn activate() -> PushOptions {
    PushOptions {
        activate: true,
        ..PushOptions::default()
    }
}

fn results(report: &PushReport) -> Vec<(String, String)> {
    report
        .lines
        .iter()
        .map(|l| (l.credential.clone(), l.result.clone()))
        .collect()
}

#[test]
fn push_and_activate_then_a_rerun_changes_nothing() {
    let desk = Desk::new();
    {
        let mut s = desk.session();
        let now = sync::now();
        s.add_token(token("MOLTO", Some(1), 1, Some("bob@contoso.com")), now)
            .unwrap();
        s.add_token(token("MOLTO", Some(2), 2, Some("bob@contoso.com")), now)
            .unwrap();
        s.add_token(token("2100123456", None, 3, Some("carol@contoso.com")), now)
            .unwrap();
        s.add_token(token("SPARE", None, 4, None), now).unwrap();
    }
    let report = desk.push(&activate());
    assert_eq!(
        results(&report),
        vec![
            ("2100123456".into(), "activated".into()),
            ("MOLTO:1".into(), "activated".into()),
            ("MOLTO:2".into(), "activated".into()),
            ("SPARE".into(), "created".into()),
        ],
        "{report:?}"
    );
    let devices = desk.sim.devices();
    assert_eq!(devices.len(), 4);
    let molto = devices.iter().find(|d| d.serial == "MOLTO-01").unwrap();
    assert_eq!(molto.status, "activated");
    assert_eq!(
        molto.display_name.as_deref(),
        Some("Token2 Molto2 MOLTO-01")
    );
    let bob = desk
        .sim
        .users()
        .into_iter()
        .find(|u| u.upn == "bob@contoso.com")
        .unwrap();
    assert_eq!(molto.assigned_to.as_deref(), Some(bob.id.as_str()));
    // A token; four serial look-ups (a small push does not read the whole
    // inventory); one bulk create; per user a look-up and the count of OATH
    // methods (tokens, apps) against the limit of five; three activations.
    assert_eq!(report.requests, 15, "{:?}", desk.sim.log());

    let links = desk.session().entra_links(TENANT).unwrap();
    assert_eq!(links.len(), 4);
    assert!(
        links
            .iter()
            .all(|l| l.device_id.is_some() && l.last_error.is_none())
    );
    let activated = links.iter().filter(|l| l.status == "activated").count();
    assert_eq!(activated, 3);
    assert!(
        links
            .iter()
            .filter(|l| l.status == "activated")
            .all(|l| l.last_counter.is_some())
    );

    // Every secret that left the vault, and every code computed, is audited.
    let audit = desk.session().audit_entries().unwrap();
    let sent = audit.iter().find(|e| e.action == "entra.push").unwrap();
    assert!(
        sent.detail.contains("MOLTO:1") && sent.detail.contains("SPARE"),
        "{}",
        sent.detail
    );
    // One entry names every code computed, with its counter, before sending.
    let computed: Vec<&str> = audit
        .iter()
        .filter(|e| e.action == "entra.activate")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(computed.len(), 1);
    for credential in ["2100123456", "MOLTO:1", "MOLTO:2"] {
        assert!(computed[0].contains(credential), "{}", computed[0]);
    }
    assert!(computed[0].contains("\"counter\""), "{}", computed[0]);
    assert!(
        audit.iter().all(|e| !e.detail.contains("AEBAGBAF")),
        "no secret in the audit log"
    );

    desk.sim.clear_log();
    let again = desk.push(&activate());
    assert!(
        again.lines.iter().all(|l| l.result == "present"),
        "{again:?}"
    );
    assert_eq!(desk.sim.devices().len(), 4, "no duplicates");
    let writes = desk
        .sim
        .log()
        .iter()
        .filter(|l| l.method != "GET" && !l.path.contains("oauth2"))
        .count();
    assert_eq!(writes, 0, "{:?}", desk.sim.log());
}

fn five_tokens() -> Desk {
    let desk = Desk::new();
    let mut s = desk.session();
    for i in 0..5u8 {
        s.add_token(token(&format!("T{i}"), None, i + 1, None), sync::now())
            .unwrap();
    }
    desk
}

fn batches_of_two() -> PushOptions {
    PushOptions {
        batch: 2,
        ..PushOptions::default()
    }
}

#[test]
fn a_lost_answer_is_retried_into_a_link_not_a_duplicate() {
    let desk = five_tokens();
    // The first batch is created but its answer is lost (502); the client
    // retries, Entra says the serials exist, and they are looked up.
    desk.sim.fault(
        Some("PATCH"),
        "hardwareOathDevices",
        1,
        FaultKind::FailAfter { status: 502 },
    );
    let report = desk.push(&batches_of_two());
    assert_eq!(report.count("created"), 5, "{report:?}");
    assert_eq!(desk.sim.devices().len(), 5);
}

#[test]
fn a_server_that_stays_down_stops_the_push_and_a_rerun_resumes() {
    let desk = five_tokens();
    desk.sim.fault_later(
        Some("PATCH"),
        "hardwareOathDevices",
        1,
        10,
        FaultKind::Fail { status: 503 },
    );
    let report = desk.push(&batches_of_two());
    assert_eq!(report.count("created"), 2, "{report:?}");
    assert_eq!(report.count("failed"), 3, "{report:?}");
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.detail.as_deref().is_some_and(|d| d.contains("503")))
    );
    assert_eq!(desk.sim.devices().len(), 2);
    desk.sim.clear_faults();
    let again = desk.push(&batches_of_two());
    assert_eq!(again.count("present"), 2, "{again:?}");
    assert_eq!(again.count("created"), 3, "{again:?}");
    assert_eq!(desk.sim.devices().len(), 5);
}

#[test]
fn a_batch_made_in_entra_but_answered_with_an_error_is_adopted_on_the_rerun() {
    let desk = five_tokens();
    desk.sim.fault_later(
        Some("PATCH"),
        "hardwareOathDevices",
        1,
        1,
        FaultKind::FailAfter { status: 400 },
    );
    let report = desk.push(&batches_of_two());
    assert_eq!(report.count("created"), 2, "{report:?}");
    assert!(report.failed());
    assert_eq!(
        desk.sim.devices().len(),
        4,
        "the failed batch was made in Entra"
    );
    let pending = desk
        .session()
        .entra_links(TENANT)
        .unwrap()
        .into_iter()
        .filter(|l| l.status == "pending")
        .count();
    assert_eq!(pending, 2);
    let again = desk.push(&batches_of_two());
    assert_eq!(again.count("adopted"), 2, "{again:?}");
    assert_eq!(again.count("created"), 1, "{again:?}");
    assert_eq!(again.count("present"), 2, "{again:?}");
    assert_eq!(desk.sim.devices().len(), 5, "no duplicates");
}

#[test]
fn what_entra_cannot_take_is_refused_before_anything_is_sent() {
    let desk = Desk::new();
    {
        let mut s = desk.session();
        let now = sync::now();
        let mut sha512 = token("S512", None, 1, None);
        sha512.credential.algorithm = Algorithm::Sha512;
        let mut eight = token("D8", None, 2, None);
        eight.credential.digits = Digits::EIGHT;
        let mut hotp = token("HOTP", None, 3, None);
        hotp.credential.kind = Kind::Hotp { counter: 0 };
        let mut odd = token("P45", None, 4, None);
        odd.credential.kind = Kind::Totp {
            step: TimeStep::new(45, 0).unwrap(),
        };
        let mut retired = token("GONE", None, 6, None);
        retired.state = State::Retired;
        s.add_token(retired, now).unwrap();
        // A burn cut short: the token may hold another seed, so Entra must
        // not be given (and activated with) the vault's.
        s.begin_burn(
            token("CUT", Some(7), 7, Some("bob@contoso.com")),
            false,
            now,
        )
        .unwrap();
        let mut sha256 = token("S256", None, 5, None);
        sha256.credential.algorithm = Algorithm::Sha256;
        sha256.credential.secret = Secret::from_bytes(vec![5; 32]);
        for t in [sha512, eight, hotp, odd, sha256] {
            s.add_token(t, now).unwrap();
        }
    }
    let report = desk.push(&activate());
    let reason = |credential: &str| {
        report
            .lines
            .iter()
            .find(|l| l.credential == credential)
            .and_then(|l| l.detail.clone())
            .unwrap_or_default()
    };
    assert!(reason("S512").contains("SHA-512"), "{report:?}");
    assert!(reason("D8").contains("6-digit"), "{report:?}");
    assert!(reason("HOTP").contains("HOTP"), "{report:?}");
    assert!(reason("P45").contains("30 or 60"), "{report:?}");
    // A retired token is not meant to go to Entra: left out, not refused.
    assert!(reason("GONE").is_empty(), "{report:?}");
    assert_eq!(report.left_out.len(), 1, "{report:?}");
    assert_eq!(report.left_out[0].credential, "GONE");
    assert!(
        report.left_out[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("retired"),
        "{report:?}"
    );
    assert!(
        reason("CUT:7").starts_with("its burn was never confirmed"),
        "{report:?}"
    );
    assert_eq!(report.count("refused"), 5);
    assert_eq!(report.count("created"), 1, "SHA-256 goes through Graph");
    let devices = desk.sim.devices();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].algorithm, Algorithm::Sha256);
}

#[test]
fn serials_must_stay_unique_and_a_user_gets_at_most_five() {
    let desk = Desk::new();
    {
        let mut s = desk.session();
        for slot in 0..7 {
            s.add_token(
                token("MOLTO", Some(slot), slot as u8 + 1, Some("bob@contoso.com")),
                sync::now(),
            )
            .unwrap();
        }
    }
    // One serial for every profile would make them indistinguishable.
    let same = PushOptions {
        profile_serial: "{serial}".into(),
        ..PushOptions::default()
    };
    let report = desk.push(&PushOptions {
        dry_run: true,
        ..same
    });
    assert_eq!(report.count("to create"), 1, "{report:?}");
    assert_eq!(report.count("refused"), 6);
    assert!(
        report.lines[1]
            .detail
            .as_deref()
            .unwrap()
            .contains("same Entra serial")
    );
    assert!(desk.sim.devices().is_empty(), "a dry run sends nothing");

    desk.sim.set_software_oath("bob@contoso.com", 1);
    let report = desk.push(&activate());
    // Bob's authenticator app counts: four tokens fit, three are refused
    // early, with the reason, before Entra would refuse them.
    assert_eq!(report.count("activated"), 4, "{report:?}");
    assert_eq!(report.count("refused"), 3, "{report:?}");
    let refused = report.lines.iter().find(|l| l.result == "refused").unwrap();
    assert!(
        refused.detail.as_deref().unwrap().contains("at most 5"),
        "{refused:?}"
    );
    assert!(!report.failed());
    let assigned = desk
        .sim
        .devices()
        .iter()
        .filter(|d| d.assigned_to.is_some())
        .count();
    assert_eq!(assigned, 4);
}

#[test]
fn a_serial_entra_has_is_refused_unless_adopted_and_activation_proves_the_secret() {
    let desk = Desk::new();
    {
        let mut s = desk.session();
        s.add_token(token("SAME", None, 9, Some("bob@contoso.com")), sync::now())
            .unwrap();
        s.add_token(
            token("OTHER", None, 8, Some("carol@contoso.com")),
            sync::now(),
        )
        .unwrap();
    }
    // Uploaded earlier by another tool: one with the vault's secret, one not.
    desk.sim
        .seed_device("SAME", &Secret::from_bytes(vec![9; 20]).to_base32(), 30);
    desk.sim.seed_device("OTHER", &unlike(8).to_base32(), 30);
    let report = desk.push(&activate());
    assert_eq!(report.count("refused"), 2, "{report:?}");
    assert!(
        report.lines[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("--adopt")
    );
    let report = desk.push(&PushOptions {
        adopt: true,
        ..activate()
    });
    let by = |c: &str| {
        report
            .lines
            .iter()
            .find(|l| l.credential == c)
            .unwrap()
            .clone()
    };
    assert_eq!(by("SAME").result, "activated", "{report:?}");
    let other = by("OTHER");
    assert_eq!(other.result, "failed");
    assert!(
        other.detail.as_deref().unwrap().contains("another secret"),
        "{other:?}"
    );
    let link = desk
        .session()
        .entra_links(TENANT)
        .unwrap()
        .into_iter()
        .find(|l| l.serial == "OTHER")
        .unwrap();
    assert_eq!(link.status, "failedActivation");
    assert!(link.last_error.is_some());
}

#[test]
fn sync_reports_and_records_what_changed_in_entra() {
    let desk = Desk::new();
    {
        let mut s = desk.session();
        s.add_token(token("A", None, 1, Some("bob@contoso.com")), sync::now())
            .unwrap();
        s.add_token(token("B", None, 2, None), sync::now()).unwrap();
        s.add_token(token("C", None, 3, None), sync::now()).unwrap();
    }
    let report = desk.push(&PushOptions {
        assign: true,
        ..PushOptions::default()
    });
    desk.session()
        .add_token(token("NOTYET", None, 4, None), sync::now())
        .unwrap();
    assert_eq!(report.count("assigned"), 1, "{report:?}");
    // Someone else changes Entra: A unassigned, B deleted, an unknown token
    // added, and the vault's NOTYET serial uploaded by another tool.
    let auth = desk.auth();
    let graph = Graph::new(&desk.http, &auth);
    let devices = graph.devices().unwrap();
    let id = |serial: &str| {
        devices
            .iter()
            .find(|d| d.serial_number.as_deref() == Some(serial))
            .and_then(|d| d.id.clone())
            .unwrap()
    };
    let bob = graph.user("bob@contoso.com").unwrap().id;
    let method = graph.methods(&bob).unwrap().remove(0);
    graph.unassign(&bob, &method.id).unwrap();
    graph.delete_device(&id("B")).unwrap();
    desk.sim
        .seed_device("STRANGER", &Secret::from_bytes(vec![5; 20]).to_base32(), 30);
    desk.sim
        .seed_device("NOTYET", &Secret::from_bytes(vec![4; 20]).to_base32(), 30);

    let mut session = desk.session();
    let report = sync::sync(&mut session, &graph, TENANT, "{serial}-{slot}", sync::now()).unwrap();
    let kinds: Vec<(String, String)> = report
        .differences
        .iter()
        .map(|d| (d.serial.clone(), d.kind.clone()))
        .collect();
    assert!(kinds.contains(&("A".into(), "status".into())), "{kinds:?}");
    assert!(kinds.contains(&("A".into(), "user".into())), "{kinds:?}");
    assert!(kinds.contains(&("B".into(), "missing".into())), "{kinds:?}");
    assert!(
        kinds.contains(&("STRANGER".into(), "extra".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("NOTYET".into(), "unlinked".into())),
        "{kinds:?}"
    );
    assert_eq!(report.in_sync, 1, "C is as recorded");
    assert_eq!(report.in_entra, 4, "A, C, STRANGER, NOTYET");
    let links = session.entra_links(TENANT).unwrap();
    let a = links.iter().find(|l| l.serial == "A").unwrap();
    assert_eq!(
        (a.status.as_str(), a.user_id.as_deref()),
        ("available", None)
    );
    assert_eq!(
        links.iter().find(|l| l.serial == "B").unwrap().status,
        "missing"
    );
    assert!(links.iter().all(|l| l.last_sync.is_some()));
    // Recorded: a second sync finds only the strangers.
    let again = sync::sync(&mut session, &graph, TENANT, "{serial}-{slot}", sync::now()).unwrap();
    let kinds: Vec<&str> = again.differences.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, vec!["missing", "extra", "unlinked"], "{again:?}");
    // A push re-creates the missing token.
    drop(session);
    let report = desk.push(&PushOptions::default());
    assert_eq!(
        report
            .lines
            .iter()
            .find(|l| l.credential == "B")
            .unwrap()
            .result,
        "created",
        "{report:?}"
    );
}

#[test]
fn unassign_and_delete_are_idempotent() {
    let desk = Desk::new();
    {
        let mut s = desk.session();
        s.add_token(token("U1", None, 1, Some("bob@contoso.com")), sync::now())
            .unwrap();
    }
    desk.push(&activate());
    let auth = desk.auth();
    let graph = Graph::new(&desk.http, &auth);
    let mut session = desk.session();
    let u1: TokenRef = "U1".parse().unwrap();
    let error = sync::delete(&mut session, &graph, TENANT, &u1, false, sync::now()).unwrap_err();
    assert!(error.to_string().contains("--unassign"), "{error}");
    let line = sync::unassign(&mut session, &graph, TENANT, &u1, sync::now()).unwrap();
    assert_eq!(
        line.detail.as_deref(),
        Some("unassigned from bob@contoso.com")
    );
    assert_eq!(desk.sim.devices()[0].status, "available");
    let line = sync::unassign(&mut session, &graph, TENANT, &u1, sync::now()).unwrap();
    assert_eq!(line.detail.as_deref(), Some("was not assigned"));
    sync::delete(&mut session, &graph, TENANT, &u1, false, sync::now()).unwrap();
    assert!(desk.sim.devices().is_empty());
    assert!(session.entra_links(TENANT).unwrap().is_empty());
    let error = sync::delete(&mut session, &graph, TENANT, &u1, false, sync::now()).unwrap_err();
    assert!(error.to_string().contains("not in Entra"), "{error}");
    let actions: Vec<String> = session
        .audit_entries()
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a.starts_with("entra.") && a != "entra.push" && a != "entra.created")
        .collect();
    assert_eq!(
        actions,
        vec![
            "entra.activate",
            "entra.activated",
            "entra.unassign",
            "entra.unassign",
            "entra.delete"
        ]
    );
}

#[test]
fn a_large_push_reads_the_inventory_in_pages_and_counts_users_tokens_from_it() {
    let desk = Desk::new();
    desk.sim.set_page_size(7);
    let users: Vec<String> = (0..6).map(|u| format!("user{u}@contoso.com")).collect();
    for upn in &users {
        desk.sim.add_user(upn, false);
    }
    {
        let mut s = desk.session();
        // 26 profiles: five for each of five users, and one more for user0.
        for i in 0..26u32 {
            let user = if i == 25 {
                &users[0]
            } else {
                &users[(i / 5) as usize]
            };
            s.add_token(token("BIG", Some(i), i as u8 + 1, Some(user)), sync::now())
                .unwrap();
        }
    }
    let report = desk.push(&PushOptions {
        batch: 10,
        ..activate()
    });
    assert_eq!(report.count("activated"), 25, "{report:?}");
    assert_eq!(report.count("refused"), 1, "{report:?}");
    assert_eq!(report.lines[25].credential, "BIG:25");
    assert!(
        report.lines[25]
            .detail
            .as_deref()
            .unwrap()
            .contains("at most 5")
    );
    desk.sim.clear_log();
    let again = desk.push(&activate());
    assert_eq!(again.count("present"), 25, "{again:?}");
    // Re-run: a token, the inventory in four pages, user0's look-up for the
    // refused one, its method counts; nothing else.
    let log = desk.sim.log();
    let pages = log
        .iter()
        .filter(|l| l.path.contains("hardwareOathDevices"))
        .count();
    assert_eq!(pages, 4, "{log:?}");
    assert!(
        log.iter()
            .all(|l| l.method == "GET" || l.path.contains("oauth2"))
    );
}

#[test]
fn push_activate_and_sync_on_a_postgresql_vault() {
    let schema = oathdesk_vault::testing::ScratchSchema::new();
    let location = schema.location();
    let kdf = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    Vault::create_at(&location, "alice", b"pass", kdf, sync::now()).unwrap();
    let session = || {
        Vault::open_at(&location)
            .unwrap()
            .unlock("alice", Unlock::Passphrase(b"pass"))
            .unwrap()
    };
    let desk = Desk::new();
    {
        let mut s = session();
        for slot in 0..3 {
            s.add_token(
                token("PG", Some(slot), slot as u8 + 1, Some("bob@contoso.com")),
                sync::now(),
            )
            .unwrap();
        }
    }
    let auth = desk.auth();
    let graph = Graph::new(&desk.http, &auth);
    let push = |s: &mut Session| {
        sync::push(
            s,
            &graph,
            TENANT,
            &CredentialFilter::default(),
            &activate(),
            &Clock::system(),
        )
        .unwrap()
    };
    let report = push(&mut session());
    assert_eq!(report.count("activated"), 3, "{report:?}");
    let again = push(&mut session());
    assert_eq!(again.count("present"), 3, "{again:?}");
    let mut s = session();
    let links = s.entra_links(TENANT).unwrap();
    let serials: Vec<&str> = links.iter().map(|l| l.serial.as_str()).collect();
    assert_eq!(serials, ["PG-00", "PG-01", "PG-02"]);
    assert!(
        links
            .iter()
            .all(|l| l.status == "activated" && l.last_counter.is_some())
    );
    let report = sync::sync(&mut s, &graph, TENANT, "{serial}-{slot}", sync::now()).unwrap();
    assert_eq!((report.in_sync, report.differences.len()), (3, 0));
    assert_eq!(s.audit_verify().unwrap().first_bad, None);
}

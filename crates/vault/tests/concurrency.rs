//! Many clients at once, each with its own connection and session, racing
//! to move the same tokens, ask for the same user's codes and append to the
//! audit log: the result must be one linear, verifiable chain in which no
//! update was lost. On both databases.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use common::*;
use oathdesk_vault::audit::AuditEvent;
use oathdesk_vault::model::State;
use serde_json::json;

on_both_backends!(many_clients_keep_one_history);

const WORKERS: usize = 6;
const TOKENS: usize = 4;
const ROUNDS: usize = 4;
const CODES_PER_HOUR: u64 = 4;
/// Helpdesk requests each worker makes for the shared user.
const REQUESTS: usize = 3;

/// What one worker saw succeed.
#[derive(Default)]
struct Tally {
    transitions: usize,
    granted: usize,
    refused: usize,
    marks: usize,
}

fn many_clients_keep_one_history(backend: Backend) {
    let f = fixture(backend);
    {
        let mut s = session(&f.location);
        s.set_setting("helpdesk.codes_per_hour", CODES_PER_HOUR, NOW)
            .unwrap();
        for i in 0..TOKENS {
            let user = format!("u{i}@contoso.com");
            s.add_token(token(&format!("T-{i}"), None, SEED, Some(&user)), NOW)
                .unwrap();
        }
        s.add_token(
            token("SHARED-1", None, SEED, Some("shared@contoso.com")),
            NOW,
        )
        .unwrap();
    }
    // vault.init and vault.sign_rows, the setting, the tokens.
    // init, signing, the tests' policy, the setting, the tokens, …
    let setup_entries = 3 + 1 + TOKENS + 1;

    // Every worker unlocks first, then all start at once.
    let start = Arc::new(Barrier::new(WORKERS));
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let location = f.location.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let mut s = session(&location);
                let mut tally = Tally::default();
                start.wait();
                for round in 0..ROUNDS {
                    // Round and round: assigned → shipped → lost → assigned.
                    // Each step is tried by every worker; whoever comes
                    // second finds the token moved on and is refused.
                    for i in 0..TOKENS {
                        let reference = serial(&format!("T-{}", (i + worker) % TOKENS));
                        for to in [State::Shipped, State::Lost, State::Assigned] {
                            if s.transition(&reference, to, None, NOW).is_ok() {
                                tally.transitions += 1;
                            }
                        }
                    }
                    if round < REQUESTS {
                        match s.helpdesk_code(&helpdesk("shared@contoso.com"), NOW) {
                            Ok(_) => tally.granted += 1,
                            Err(_) => tally.refused += 1,
                        }
                    }
                    s.record(
                        AuditEvent::ok("test.mark")
                            .detail(json!({"worker": worker, "round": round})),
                        NOW,
                    )
                    .unwrap();
                    tally.marks += 1;
                }
                tally
            })
        })
        .collect();
    let tallies: Vec<Tally> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let transitions: usize = tallies.iter().map(|t| t.transitions).sum();
    let granted: usize = tallies.iter().map(|t| t.granted).sum();
    let refused: usize = tallies.iter().map(|t| t.refused).sum();
    let marks: usize = tallies.iter().map(|t| t.marks).sum();

    // The rate limit held across connections: exactly the limit granted.
    assert_eq!(granted as u64, CODES_PER_HOUR);
    assert_eq!(granted + refused, WORKERS * REQUESTS);
    assert!(
        transitions >= TOKENS * 3,
        "each token moved at least once around"
    );

    let mut s = session(&f.location);
    let report = s.audit_verify().unwrap();
    assert_eq!(report.first_bad, None, "the chain is one line");
    let entries = s.audit_entries().unwrap();
    // Every success and every helpdesk request is in the log, once.
    assert_eq!(
        entries.len(),
        setup_entries + transitions + WORKERS * REQUESTS + marks
    );
    assert_eq!(report.entries as usize, entries.len());
    let count = |action: &str| entries.iter().filter(|e| e.action == action).count();
    assert_eq!(
        count("token.shipped") + count("token.lost") + count("token.assigned"),
        transitions
    );
    assert_eq!(count("test.mark"), marks);
    // Each worker's marks are in the order it made them.
    let mut last_round: HashMap<u64, i64> = HashMap::new();
    for entry in entries.iter().filter(|e| e.action == "test.mark") {
        let detail: serde_json::Value = serde_json::from_str(&entry.detail).unwrap();
        let worker = detail["worker"].as_u64().unwrap();
        let round = detail["round"].as_i64().unwrap();
        let previous = last_round.insert(worker, round).unwrap_or(-1);
        assert_eq!(round, previous + 1, "worker {worker}'s marks out of order");
    }

    // No lost update: each transition starts where the one before it ended
    // (two writers that both read "assigned" would both write "shipped").
    let mut moves = 0;
    for i in 0..TOKENS {
        let (info, history) = s.token(&serial(&format!("T-{i}"))).unwrap();
        for pair in history.windows(2) {
            assert_eq!(
                pair[1].from_state,
                Some(pair[0].to_state),
                "T-{i}: {history:?}"
            );
        }
        assert_eq!(info.state, history.last().unwrap().to_state);
        moves += history.len() - 1;
    }
    assert_eq!(moves, transitions);
}

/// A server keeps its connections between requests. One that PostgreSQL
/// closed in the meantime (a restart, a failover, an administrator) is
/// replaced before the next transaction: when it has been idle, by the
/// check; otherwise the one request that meets it fails, and the store
/// reconnects for the next.
#[test]
fn a_connection_the_server_closed_is_replaced() {
    use oathdesk_vault::postgres::PgStore;
    use oathdesk_vault::store::{Store, StoreTx};

    let f = fixture(Backend::Postgres);
    let name = f.schema.as_ref().unwrap().name().to_owned();
    let url = format!(
        "{}&application_name={name}",
        f.schema.as_ref().unwrap().url()
    );
    let terminate = || {
        let ended: Vec<bool> = f
            .schema
            .as_ref()
            .unwrap()
            .client()
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(ended, [true], "one connection of the store to end");
    };
    let operators = |store: &mut PgStore| store.read().and_then(|tx| tx.operators());

    // Checked because idle (here: at once): nothing fails.
    let mut store = PgStore::open(&url).unwrap();
    store.set_idle_check(std::time::Duration::ZERO);
    terminate();
    assert_eq!(operators(&mut store).unwrap().len(), 1);
    terminate();
    let tx = store.write().unwrap();
    tx.commit().unwrap();

    // Used a moment ago, so not checked: that transaction fails, the next
    // one works on a new connection.
    store.set_idle_check(std::time::Duration::from_secs(3600));
    terminate();
    assert!(operators(&mut store).is_err());
    assert_eq!(operators(&mut store).unwrap().len(), 1);
}

/// Several processes creating a vault in one empty schema at once (servers
/// started together): one creates it, the others are told it exists, and
/// nobody meets a half-made schema or a raw database error.
#[test]
fn creating_at_once_makes_one_vault() {
    use oathdesk_vault::{Error, Vault};
    for _ in 0..3 {
        let f = Fixture::empty(Backend::Postgres);
        let barrier = Arc::new(Barrier::new(4));
        let results: Vec<Result<(), Error>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|i| {
                    let (barrier, location) = (barrier.clone(), &f.location);
                    scope.spawn(move || {
                        barrier.wait();
                        let name = format!("op{i}");
                        Vault::create_at(location, &name, b"pass", TEST_KDF, NOW).map(|_| ())
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let created = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(created, 1, "{results:?}");
        for refused in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(refused, Error::VaultExists { .. } | Error::Exists(_)),
                "{refused}"
            );
        }
        let mut vault = Vault::open_at(&f.location).unwrap();
        assert_eq!(vault.operators().unwrap().len(), 1);
    }
}

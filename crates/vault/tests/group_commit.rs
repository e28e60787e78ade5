//! Group commit (helpdesk codes from many sessions of one process share
//! commits), on SQLite and on PostgreSQL: every request is answered only
//! after the commit that holds its audit entry, the chain stays one line,
//! and the per-user rate limit holds exactly under concurrency.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use oathdesk_vault::Location;

const THREADS: usize = 16;
const REQUESTS: usize = 4;
const LIMIT: u64 = 23;

on_both_backends!(concurrent_helpdesk_codes_are_answered_after_their_commit_and_the_limit_is_exact);

/// The outcome of the audit entry of `ticket` for `user`, read on a
/// connection of its own (not this process's writer): committed data only.
fn committed_outcome(location: &Location, ticket: &str, user: &str) -> Result<String, String> {
    match location {
        Location::Sqlite(path) => rusqlite::Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT outcome FROM audit WHERE ticket = ? AND lower(user) = ?",
                [ticket, user],
                |r| r.get(0),
            )
            .map_err(|e| e.to_string()),
        Location::Postgres(url) => {
            // The scratch schema's URL ends with its `schema` parameter.
            let at = url.rfind("schema=").expect("a scratch schema");
            let (base, rest) = (&url[..at - 1], &url[at + "schema=".len()..]);
            let schema = rest.split('&').next().expect("a schema name");
            let mut client = ::postgres::Client::connect(base, ::postgres::NoTls).unwrap();
            client
                .query_opt(
                    &format!(
                        "SELECT outcome FROM \"{schema}\".audit \
                         WHERE ticket = $1 AND lower(\"user\") = $2"
                    ),
                    &[&ticket, &user],
                )
                .unwrap()
                .map(|row| row.get(0))
                .ok_or_else(|| "no entry".to_owned())
        }
    }
}

fn concurrent_helpdesk_codes_are_answered_after_their_commit_and_the_limit_is_exact(
    backend: Backend,
) {
    concurrent_helpdesk_codes(backend, false);
}

/// As above with two writers on one PostgreSQL vault, as two consoles (or
/// a console and the command line) are: half the sessions open the vault by
/// another URL (an `application_name` more), so they write in groups of
/// their own on another writer connection and meet the first writer's
/// groups at the audit table's lock, as another process's would.
#[test]
fn two_writers_of_one_postgres_vault_keep_one_chain_and_the_limit() {
    concurrent_helpdesk_codes(Backend::Postgres, true);
}

/// The same vault by a URL that this process's writer registry tells apart.
fn as_a_peer(location: &Location) -> Location {
    match location {
        Location::Postgres(url) => Location::Postgres(format!("{url}&application_name=peer")),
        Location::Sqlite(_) => unreachable!("peers are PostgreSQL's"),
    }
}

fn concurrent_helpdesk_codes(backend: Backend, peers: bool) {
    let f = fixture(backend);
    {
        let mut s = session(&f.location);
        s.set_setting("helpdesk.codes_per_hour", LIMIT, NOW)
            .unwrap();
        s.add_token(token("LIM-1", None, SEED, Some("limited@contoso.com")), NOW)
            .unwrap();
        for i in 0..THREADS {
            let user = format!("u{i}@contoso.com");
            s.add_token(token(&format!("FREE-{i}"), None, SEED, Some(&user)), NOW)
                .unwrap();
        }
    }
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|worker| {
            let location = if peers && worker % 2 == 1 {
                as_a_peer(&f.location)
            } else {
                f.location.clone()
            };
            let start = start.clone();
            std::thread::spawn(move || {
                let mut s = session(&location);
                let mut granted = 0;
                start.wait();
                for n in 0..REQUESTS {
                    // One request on the shared, limited user, one on the worker's own.
                    for user in [
                        "limited@contoso.com".to_owned(),
                        format!("u{worker}@contoso.com"),
                    ] {
                        let mut request = helpdesk(&user);
                        request.ticket = format!("INC-{worker:02}{n:02}");
                        let answer = s.helpdesk_code(&request, NOW);
                        if answer.is_ok() {
                            granted += usize::from(user.starts_with("limited"));
                        }
                        // Answered only after the commit: another connection
                        // (not of this process's writer) reads the entry.
                        let outcome = committed_outcome(&location, &request.ticket, &user)
                            .unwrap_or_else(|e| {
                                panic!(
                                    "{} for {user} answered before its commit: {e}",
                                    request.ticket
                                )
                            });
                        assert_eq!(outcome == "granted", answer.is_ok(), "{answer:?}");
                        if !user.starts_with("limited") {
                            answer.unwrap();
                        }
                    }
                }
                granted
            })
        })
        .collect();
    let granted: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    // Exactly the limit, though 64 requests raced for it.
    assert_eq!(granted as u64, LIMIT);
    let mut s = session(&f.location);
    let report = s.audit_verify().unwrap();
    assert_eq!(report.first_bad, None, "the chain is one line");
    let entries = s.audit_entries().unwrap();
    let codes = entries
        .iter()
        .filter(|e| e.action == "helpdesk.code")
        .count();
    assert_eq!(codes, THREADS * REQUESTS * 2, "every request audited once");
    assert_eq!(report.entries as usize, entries.len());
}

//! The first start: which server creates the vault, and what the others
//! on the same database do while it waits for its first admin.

mod common;

use common::{KDF, now};
use oathdesk_server::{FirstRun, prepare};
use oathdesk_vault::Location;
use oathdesk_vault::testing::ScratchSchema;

fn code(first_run: &FirstRun) -> &str {
    match first_run {
        FirstRun::Created { setup_code } => setup_code,
        other => panic!("expected a new vault, got {other:?}"),
    }
}

/// On PostgreSQL a vault waiting for setup is left as it is: another server
/// may be serving it, and the code it printed works on every server.
#[test]
fn a_postgresql_vault_waiting_for_setup_is_kept_for_every_server() {
    let schema = ScratchSchema::new();
    let first = prepare(&schema.location(), KDF, now()).unwrap();
    code(&first);
    assert_eq!(
        prepare(&schema.location(), KDF, now()).unwrap(),
        FirstRun::AwaitingSetup
    );
}

/// Servers started at the same moment on an empty schema make one vault.
#[test]
fn servers_starting_together_create_one_vault() {
    for _ in 0..3 {
        let schema = ScratchSchema::new();
        let location = schema.location();
        let results: Vec<FirstRun> = std::thread::scope(|scope| {
            let starts: Vec<_> = (0..3)
                .map(|_| scope.spawn(|| prepare(&location, KDF, now()).unwrap()))
                .collect();
            starts.into_iter().map(|s| s.join().unwrap()).collect()
        });
        let created = results
            .iter()
            .filter(|r| matches!(r, FirstRun::Created { .. }))
            .count();
        assert_eq!(created, 1, "{results:?}");
        assert!(
            results
                .iter()
                .all(|r| matches!(r, FirstRun::Created { .. } | FirstRun::AwaitingSetup)),
            "{results:?}"
        );
    }
}

/// On SQLite an empty vault still waiting for setup is made anew with a new
/// code: the old code was only printed.
#[test]
fn an_empty_sqlite_vault_waiting_for_setup_gets_a_new_code() {
    let dir = tempfile::tempdir().unwrap();
    let location = Location::Sqlite(dir.path().join("vault.db"));
    let first = prepare(&location, KDF, now()).unwrap();
    let second = prepare(&location, KDF, now()).unwrap();
    assert_ne!(code(&first), code(&second));
}

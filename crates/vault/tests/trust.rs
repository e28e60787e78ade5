//! The threat model's promises 1, 3 and 5 through the vault library, on
//! both databases: one permission table for every operator, no action on a
//! row the vault did not sign, and no delivery proven by a code the vault
//! showed someone (`../shared/specs/threat-model.md`).

mod common;

use std::path::Path;

use common::*;

use oathdesk_otp::{Verifier, Window};
use oathdesk_vault::audit::AuditEvent;
use oathdesk_vault::model::{EntraLink, State};
use oathdesk_vault::store::CredentialFilter;
use oathdesk_vault::{Error, Location, NewOperator, Permission, Role, Session, Unlock, Vault};

on_both_backends!(
    every_operation_is_decided_by_the_role,
    the_red_teams_edits_are_refused_and_listed,
    random_single_field_edits_are_never_acted_upon,
    a_released_step_never_proves_delivery,
    a_step_released_again_keeps_its_first_release,
    the_last_admin_keeps_the_role,
    swapped_row_macs_are_refused_and_listed,
    macs_kept_in_row_macs_move_into_their_rows,
    a_large_import_is_written_whole_signed_and_sealed,
);

const OTHER_SEED: &[u8] = b"another secret 12345";
const TENANT: &str = "contoso.onmicrosoft.com";

fn passphrase(name: &str) -> Vec<u8> {
    format!("{name} pass").into_bytes()
}

/// Signs in as `name`: with their own key slot, or — helpdesk and auditor
/// operators hold none — at a console that alice (an admin) unsealed.
fn unlock_as(location: &Location, name: &str) -> Result<Session, Error> {
    let password = passphrase(name);
    match Vault::open_at(location)
        .unwrap()
        .unlock(name, Unlock::Passphrase(&password))
    {
        Err(Error::NoKeySlot { .. }) => {
            let console = session(location).unseal_key("test", NOW).unwrap();
            Vault::open_at(location).unwrap().unlock_with(
                name,
                Unlock::Passphrase(&password),
                &console,
            )
        }
        other => other,
    }
}

fn link(credential_id: i64, serial: &str) -> EntraLink {
    EntraLink {
        tenant: TENANT.into(),
        credential_id,
        serial: serial.into(),
        device_id: Some("dev-1".into()),
        user_id: Some("user-1".into()),
        user_upn: Some("bob@contoso.com".into()),
        method_id: None,
        status: "assigned".into(),
        last_counter: None,
        last_sync: None,
        last_error: None,
        updated_at: NOW,
    }
}

/// A small vault with something of every signed kind: credentials 1 (bob,
/// shipped), 2 (carol), 3 (a Molto-2 slot, burned), 4 (dave, lost); a
/// setting; an operator of each role; an Entra link; a released step.
fn populated(backend: Backend) -> Fixture {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.set_setting("helpdesk.codes_per_hour", 4, NOW).unwrap();
    s.add_token(token("2100001", None, SEED, Some("bob@contoso.com")), NOW)
        .unwrap();
    s.add_token(
        token("2100002", None, OTHER_SEED, Some("carol@contoso.com")),
        NOW,
    )
    .unwrap();
    s.add_token(token("MOLTO-1", Some(3), SEED, None), NOW)
        .unwrap();
    s.add_token(token("2100003", None, SEED, Some("dave@contoso.com")), NOW)
        .unwrap();
    s.transition(&serial("2100001"), State::Shipped, None, NOW)
        .unwrap();
    s.transition(&serial("2100003"), State::Lost, None, NOW)
        .unwrap();
    for (name, role) in [
        ("adm2", Role::Admin),
        ("prov", Role::Provisioner),
        ("hd", Role::Helpdesk),
        ("aud", Role::Auditor),
    ] {
        s.add_operator(
            name,
            NewOperator::Passphrase(&passphrase(name), TEST_KDF),
            role,
            NOW,
        )
        .unwrap();
    }
    s.entra_record(
        &[link(1, "2100001")],
        &[],
        AuditEvent::ok("entra.test"),
        NOW,
    )
    .unwrap();
    s.helpdesk_code(&helpdesk("bob@contoso.com"), NOW).unwrap();
    assert!(s.verify_rows().unwrap().bad.is_empty());
    f
}

type Operation = (
    Permission,
    &'static str,
    fn(&mut Session) -> Result<(), Error>,
);

/// Every kind of operation, each with the permission it needs. Run in this
/// order by every role; what a permitted one does is not the point here
/// (a wrong code is refused, a duplicate exists), only that the role decides.
const OPERATIONS: &[Operation] = &[
    (Permission::InventoryRead, "tokens", |s| {
        s.tokens(&CredentialFilter::default()).map(drop)
    }),
    (Permission::InventoryRead, "token", |s| {
        s.token(&serial("2100002")).map(drop)
    }),
    (Permission::InventoryRead, "users", |s| s.users().map(drop)),
    (Permission::InventoryRead, "devices", |s| {
        s.devices().map(drop)
    }),
    (Permission::InventoryRead, "operators", |s| {
        s.operators().map(drop)
    }),
    (Permission::InventoryRead, "setting", |s| {
        s.setting(oathdesk_vault::settings::RATE_LIMIT).map(drop)
    }),
    (Permission::InventoryRead, "entra links", |s| {
        s.entra_links(TENANT).map(drop)
    }),
    (Permission::InventoryWrite, "add user", |s| {
        s.add_user("new@contoso.com", None, NOW).map(drop)
    }),
    (Permission::InventoryWrite, "add token", |s| {
        s.add_token(token("NEW-1", None, SEED, None), NOW).map(drop)
    }),
    (Permission::InventoryWrite, "assign", |s| {
        s.assign(&serial("MOLTO-1:3"), "carol@contoso.com", NOW)
            .map(drop)
    }),
    (Permission::InventoryWrite, "retire", |s| {
        s.transition(&serial("NEW-1"), State::Retired, None, NOW)
            .map(drop)
    }),
    (Permission::InventoryWrite, "purge due", |s| {
        s.purge_due(NOW).map(drop)
    }),
    (Permission::InventoryWrite, "entra record", |s| {
        s.entra_record(&[], &[], AuditEvent::ok("entra.test"), NOW)
    }),
    (Permission::HelpdeskCode, "helpdesk code", |s| {
        s.helpdesk_code(&helpdesk("carol@contoso.com"), NOW)
            .map(drop)
    }),
    (Permission::Identify, "identify", |s| {
        s.identify(&["000000"], NOW, Window::symmetric(1), NOW)
            .map(drop)
    }),
    (Permission::Deliver, "deliver", |s| {
        // Not the code of any step around NOW: refused, not forbidden.
        s.deliver(&serial("2100002"), "0000000000", NOW).map(drop)
    }),
    (Permission::DeliveryLink, "delivery link", |s| {
        s.create_delivery_link(&serial("2100002"), NOW).map(drop)
    }),
    (Permission::Deliver, "resync", |s| {
        // A TOTP token: refused as such, not forbidden.
        s.resync_hotp(&serial("2100002"), "000000", "000001", NOW)
            .map(drop)
    }),
    (Permission::Counter, "set counter", |s| {
        s.set_hotp_counter(&serial("2100002"), 5, NOW).map(drop)
    }),
    (Permission::InventoryRead, "seed provenance", |s| {
        s.seed_provenance(&serial("2100002")).map(drop)
    }),
    (Permission::Deliver, "token check", |s| {
        s.check_token(&serial("2100002"), "0000000000", NOW)
            .map(drop)
    }),
    (Permission::InventoryRead, "fleet drift", |s| {
        s.fleet_drift(Verifier::Entra, 86_400, NOW).map(drop)
    }),
    (Permission::InventoryRead, "fleet eol", |s| {
        s.fleet_eol(NOW, NOW).map(drop)
    }),
    (Permission::Forensic, "forensic", |s| {
        s.forensic(
            &oathdesk_vault::ForensicTarget::Token(serial("2100002")),
            "000000",
            oathdesk_otp::Interval {
                from: NOW - 7200,
                until: NOW - 3600,
            },
            Verifier::Entra,
            NOW,
        )
        .map(drop)
    }),
    (Permission::Export, "reveal", |s| {
        s.reveal(&serial("2100002")).map(drop)
    }),
    (Permission::Export, "reveal all", |s| {
        s.reveal_all(&CredentialFilter::default()).map(drop)
    }),
    (Permission::Export, "enrolment code", |s| {
        s.enrolment_code(&serial("MOLTO-1:3"), Verifier::Entra, NOW)
            .map(drop)
    }),
    (Permission::AuditRead, "audit list", |s| {
        s.audit_entries().map(drop)
    }),
    (Permission::AuditRead, "audit verify", |s| {
        s.audit_verify().map(drop)
    }),
    (Permission::AuditRead, "vault verify", |s| {
        s.verify_rows().map(drop)
    }),
    (Permission::Admin, "set setting", |s| {
        s.set_setting("purge.grace_seconds", 0, NOW)
    }),
    (Permission::Admin, "add operator", |s| {
        s.add_operator(
            "hd",
            NewOperator::Passphrase(b"x", TEST_KDF),
            Role::Helpdesk,
            NOW,
        )
    }),
    (Permission::Admin, "set role", |s| {
        s.set_operator_role("nobody", Role::Admin, NOW)
    }),
    (Permission::Admin, "web accounts", |s| {
        s.web_accounts().map(drop)
    }),
    (Permission::Account, "own web account", |s| {
        s.web_account().map(drop)
    }),
];

fn every_operation_is_decided_by_the_role(backend: Backend) {
    let f = populated(backend);
    for role in Role::ALL {
        let name = match role {
            Role::Admin => "adm2",
            Role::Provisioner => "prov",
            Role::Helpdesk => "hd",
            Role::Auditor => "aud",
        };
        let mut s = unlock_as(&f.location, name).unwrap();
        assert_eq!(s.role(), role);
        let mut refused = 0;
        for (permission, what, operation) in OPERATIONS {
            let outcome = operation(&mut s);
            let forbidden = matches!(
                &outcome,
                Err(Error::Forbidden { permission: p, role: r, token: false })
                    if p == permission && *r == role
            );
            assert_eq!(
                forbidden,
                !role.permits(*permission),
                "{role} / {what}: {outcome:?}"
            );
            if forbidden {
                refused += 1;
                // The words every front-end shows.
                assert_eq!(
                    outcome.unwrap_err().to_string(),
                    format!("the {role} role may not {}", permission.describe())
                );
            }
        }
        // Each refusal is in the audit log, with who, what and why.
        drop(s);
        let entries = session(&f.location).audit_entries().unwrap();
        let audited = entries
            .iter()
            .filter(|e| e.action == "forbidden" && e.operator == name)
            .collect::<Vec<_>>();
        assert_eq!(audited.len(), refused, "{role}");
        assert!(
            audited
                .iter()
                .all(|e| e.outcome == "refused"
                    && e.detail.contains(&format!("\"role\":\"{role}\"")))
        );
    }
}

/// Applies `sql` to a fresh populated vault, then checks that `act` (as
/// alice, an admin) is refused as altered, that the refusal is audited and
/// that `vault verify` names `row`.
fn refused_as_altered(
    backend: Backend,
    sql: &str,
    row: &str,
    act: impl FnOnce(&mut Session) -> Result<(), Error>,
) {
    let f = populated(backend);
    f.execute(sql);
    let mut s = session(&f.location);
    match act(&mut s) {
        Err(Error::Altered { row: found }) => assert!(found.contains(row), "{sql}: {found}"),
        other => panic!("{sql}: acted upon, or refused otherwise: {other:?}"),
    }
    let report = s.verify_rows().unwrap();
    assert!(
        report.bad.iter().any(|bad| bad.name.contains(row)),
        "{sql}: vault verify missed {row}: {report:?}"
    );
    let entries = s.audit_entries().unwrap();
    let last_altered = entries
        .iter()
        .rev()
        .find(|e| e.action == "row.altered")
        .expect("an altered row is audited");
    assert!(last_altered.detail.contains(row), "{}", last_altered.detail);
}

fn the_red_teams_edits_are_refused_and_listed(backend: Backend) {
    let carol_code = |s: &mut Session| {
        s.helpdesk_code(&helpdesk("carol@contoso.com"), NOW + 60)
            .map(drop)
    };
    let bob_code = |s: &mut Session| {
        s.helpdesk_code(&helpdesk("bob@contoso.com"), NOW + 60)
            .map(drop)
    };
    // Swap two credentials' users: carol would be read bob's code.
    refused_as_altered(
        backend,
        "UPDATE credentials SET user_id = 3 - user_id WHERE id IN (1, 2)",
        "credential",
        carol_code,
    );
    // Swap two users' UPNs.
    refused_as_altered(
        backend,
        "UPDATE users SET upn = 'tmp' WHERE upn = 'bob@contoso.com';
         UPDATE users SET upn = 'bob@contoso.com' WHERE upn = 'carol@contoso.com';
         UPDATE users SET upn = 'carol@contoso.com' WHERE upn = 'tmp';",
        "user",
        carol_code,
    );
    // Listing shows an altered row, marked: nothing trusts what it says.
    let f = populated(backend);
    f.execute("UPDATE credentials SET user_id = 3 - user_id WHERE id IN (1, 2)");
    let listed = session(&f.location)
        .tokens(&CredentialFilter::default())
        .unwrap();
    let altered: Vec<i64> = listed.iter().filter(|t| t.altered).map(|t| t.id).collect();
    assert_eq!(altered, [1, 2]);
    let (shown, _) = session(&f.location).token(&serial("2100003")).unwrap();
    assert!(!shown.altered);
    drop(f);
    // Bring a lost token back.
    refused_as_altered(
        backend,
        "UPDATE credentials SET state = 'assigned' WHERE id = 4",
        "credential 4 (serial 2100003)",
        |s| {
            s.helpdesk_code(&helpdesk("dave@contoso.com"), NOW + 60)
                .map(drop)
        },
    );
    // Raise the rate limit, or delete it to fall back to the default.
    refused_as_altered(
        backend,
        "UPDATE meta SET value = '1000' WHERE key = 'setting.helpdesk.codes_per_hour'",
        "setting helpdesk.codes_per_hour",
        bob_code,
    );
    refused_as_altered(
        backend,
        "DELETE FROM meta WHERE key = 'setting.helpdesk.codes_per_hour'",
        "setting helpdesk.codes_per_hour",
        bob_code,
    );
    // Give the helpdesk operator the admin role in the database.
    let f = populated(backend);
    f.execute("UPDATE operators SET role = 'admin' WHERE name = 'hd'");
    assert!(
        matches!(unlock_as(&f.location, "hd"), Err(Error::Altered { ref row }) if row.contains("operator hd")),
        "a role edited in the database is not taken"
    );
    let report = session(&f.location).verify_rows().unwrap();
    assert_eq!(report.bad.len(), 1, "{report:?}");
    assert_eq!(report.bad[0].name, "operator hd (role admin)");
    // A credential inserted without oathdesk (a copy of another's row).
    refused_as_altered(
        backend,
        "UPDATE credentials SET device_id = NULL, slot = NULL WHERE id = 3",
        "credential 3",
        |s| s.reveal(&oathdesk_vault::model::TokenRef::Id(3)).map(drop),
    );
    // An Entra link moved to another device.
    refused_as_altered(
        backend,
        "UPDATE entra_links SET device_id = 'dev-2'",
        "Entra link of credential 1",
        |s| s.entra_links(TENANT).map(drop),
    );
    // Forget a released step: its code still proves nothing, and
    // `vault verify` names the deletion.
    let f = populated(backend);
    f.execute("DELETE FROM released_steps");
    let mut s = session(&f.location);
    assert!(matches!(
        s.deliver(&serial("2100001"), &code_at(SEED, NOW), NOW + 1),
        Err(Error::CodeReleased { .. })
    ));
    let report = s.verify_rows().unwrap();
    assert!(
        report
            .bad
            .iter()
            .any(|b| b.problem == "deleted" && b.kind == "released_step"),
        "{report:?}"
    );
    drop(s);
    // Deleting the marker does not switch checking off.
    refused_as_altered(
        backend,
        "DELETE FROM meta WHERE key = 'rows_signed'; UPDATE credentials SET state = 'assigned' WHERE id = 4",
        "credential 4",
        |s| {
            s.helpdesk_code(&helpdesk("dave@contoso.com"), NOW + 60)
                .map(drop)
        },
    );
}

/// A small deterministic generator: the same edits on every run.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// A signed column and an edit of it that changes its value. `{id}` is
/// the row's key.
struct Column {
    table: &'static str,
    key: &'static str,
    ids: &'static [&'static str],
    set: &'static [&'static str],
    probe: fn(&mut Session, &str) -> Result<(), Error>,
}

fn reveal_id(s: &mut Session, id: &str) -> Result<(), Error> {
    s.reveal(&oathdesk_vault::model::TokenRef::Id(id.parse().unwrap()))
        .map(drop)
}

const COLUMNS: &[Column] = &[
    Column {
        table: "credentials",
        key: "id",
        ids: &["1", "2", "3", "4"],
        set: &[
            "user_id = NULL",
            "user_id = 1 + (id % 3)",
            "device_id = NULL",
            "slot = coalesce(slot, 0) + 7",
            "state = 'retired'",
            "state = CASE WHEN state = 'assigned' THEN 'shipped' ELSE 'assigned' END",
            "state = 'delivered'",
            "custody = 'purged'",
            "digits = 8",
            "period = 60",
            "t0 = 30",
            "counter = 5",
            "drift_steps = 3",
            "purge_after = 1",
            "kind = 'hotp'",
            "algorithm = 'sha256'",
            "sealed_secret = NULL",
            // The MAC is kept in the row: deleting it, or taking another
            // row's, is caught like any other edit.
            "mac = NULL",
            "mac = (SELECT c.mac FROM credentials c WHERE c.id = 1 + (credentials.id % 4))",
        ],
        probe: reveal_id,
    },
    Column {
        table: "users",
        key: "id",
        ids: &["1", "2"],
        set: &[
            "upn = upn || '.evil'",
            "upn = 'x' || upn",
            "mac = NULL",
            "mac = (SELECT u.mac FROM users u WHERE u.id = 1 + (users.id % 2))",
        ],
        probe: |s, id| {
            let upn = match id {
                "1" => "bob@contoso.com",
                _ => "carol@contoso.com",
            };
            // Asked by either name: never a code from the edited row.
            let by_new = s.users()?;
            let edited = by_new.iter().find(|u| u.id.to_string() == id).unwrap();
            s.helpdesk_code(&helpdesk(&edited.upn.clone()), NOW + 60)
                .map(drop)
                .and(s.helpdesk_code(&helpdesk(upn), NOW + 60).map(drop))
        },
    },
    Column {
        table: "devices",
        key: "id",
        ids: &["1", "3"],
        set: &[
            "slots = slots + 50",
            "kind = 'classic'",
            "serial = serial || 'X'",
            "mac = NULL",
            "mac = (SELECT d.mac FROM devices d WHERE d.id <> devices.id ORDER BY d.id LIMIT 1)",
        ],
        probe: |s, id| {
            let device = s
                .devices()?
                .into_iter()
                .find(|d| d.id.to_string() == id)
                .unwrap();
            // A new credential on the device trusts its slots and kind.
            s.add_token(token(&device.serial, Some(9), SEED, None), NOW)
                .map(drop)
        },
    },
    Column {
        table: "meta",
        key: "key",
        ids: &["'setting.helpdesk.codes_per_hour'"],
        set: &["value = '1000'", "value = '5'", "value = '0'"],
        probe: |s, _| {
            s.helpdesk_code(&helpdesk("carol@contoso.com"), NOW + 60)
                .map(drop)
        },
    },
    Column {
        table: "operators",
        key: "name",
        ids: &["'hd'", "'aud'", "'prov'"],
        set: &[
            "role = 'admin'",
            "role = CASE WHEN role = 'auditor' THEN 'helpdesk' ELSE 'auditor' END",
            "recipient = recipient || 'x'",
        ],
        probe: |_, _| Ok(()), // replaced below: the probe is an unlock
    },
    Column {
        table: "entra_links",
        key: "credential_id",
        ids: &["1"],
        set: &[
            "status = 'activated'",
            "device_id = 'other'",
            "user_upn = 'mallory@contoso.com'",
            "serial = '2100002'",
            "last_counter = 99",
        ],
        probe: |s, _| s.entra_links(TENANT).map(drop),
    },
    Column {
        table: "released_steps",
        key: "credential_id",
        ids: &["1"],
        set: &["at = at + 1", "counter = counter + 1"],
        probe: |s, _| {
            // The released code must never prove delivery.
            let code = code_at(SEED, NOW);
            s.deliver(&serial("2100001"), &code, NOW + 1).map(drop)
        },
    },
];

fn random_single_field_edits_are_never_acted_upon(backend: Backend) {
    // Enough vaults that every column is edited several times, on each
    // database (≥ 200 edits in all).
    const EDITS: usize = 120;
    let seed = 0x5eed_0a7d_u64 + (backend == Backend::Postgres) as u64;
    let mut rng = Xorshift(seed);
    let mut acted = Vec::new();
    let mut missed = Vec::new();
    let mut done = 0;
    while done < EDITS {
        // A new vault every ten edits; each edit is undone before the next.
        let f = populated(backend);
        for _ in 0..10 {
            let column = rng.pick(COLUMNS);
            let id = *rng.pick(column.ids);
            let set = *rng.pick(column.set);
            let where_ = format!("{} = {id}", column.key);
            // Keep the row as it was, to put it back.
            f.execute(&format!(
                "CREATE TABLE saved AS SELECT * FROM {} WHERE {where_}",
                column.table
            ));
            f.execute(&format!("UPDATE {} SET {set} WHERE {where_}", column.table));
            let what = format!("{}.{set} where {where_} (seed {seed:#x})", column.table);
            let outcome = if column.table == "operators" {
                unlock_as(&f.location, id.trim_matches('\'')).map(drop)
            } else {
                let mut s = session(&f.location);
                (column.probe)(&mut s, id)
            };
            match outcome {
                Err(Error::Altered { .. }) => {}
                Err(Error::CodeReleased { .. }) if column.table == "released_steps" => {}
                other => acted.push(format!("{what}: {other:?}")),
            }
            let report = session(&f.location).verify_rows().unwrap();
            if report.bad.is_empty() {
                missed.push(what);
            }
            let edited = set.split('=').next().unwrap().trim();
            f.execute(&format!(
                "UPDATE {table} SET {edited} = (SELECT {edited} FROM saved) WHERE {where_}; DROP TABLE saved",
                table = column.table
            ));
            done += 1;
        }
        // Put back, everything verifies again.
        let report = session(&f.location).verify_rows().unwrap();
        assert!(report.bad.is_empty(), "{report:?}");
    }
    assert_eq!(acted, Vec::<String>::new(), "edits acted upon");
    assert_eq!(missed, Vec::<String>::new(), "edits vault verify missed");
}

fn a_released_step_never_proves_delivery(backend: Backend) {
    let f = populated(backend);
    let mut s = session(&f.location);
    // The helpdesk read carol a code at NOW + 100 (step NOW/30 + 3).
    let grant = s
        .helpdesk_code(&helpdesk("carol@contoso.com"), NOW + 100)
        .unwrap();
    let released = grant.code.clone();
    let err = s
        .deliver(&serial("2100002"), &released, NOW + 110)
        .unwrap_err();
    assert!(matches!(err, Error::CodeReleased { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "this code was given out by the helpdesk (or shown at enrolment) for 2100002: it proves \
         nothing about the token; ask the user for the next code the token shows"
    );
    let (token, _) = s.token(&serial("2100002")).unwrap();
    assert_eq!(token.state, State::Assigned, "nothing changed");
    assert_eq!(token.custody, oathdesk_vault::model::Custody::Held);
    // The next code the token shows is one nobody was given.
    let next = code_at(OTHER_SEED, (grant.counter + 1) * 30);
    let delivery = s.deliver(&serial("2100002"), &next, NOW + 130).unwrap();
    assert!(delivery.purged);
    assert_eq!(delivery.drift_steps, 0);

    // An enrolment code is released too.
    let code = s
        .enrolment_code(&serial("MOLTO-1:3"), Verifier::Entra, NOW)
        .unwrap();
    s.assign(&serial("MOLTO-1:3"), "erin@contoso.com", NOW)
        .unwrap_err(); // erin is not a user: assignment needs one
    s.add_user("erin@contoso.com", None, NOW).unwrap();
    s.assign(&serial("MOLTO-1:3"), "erin@contoso.com", NOW)
        .unwrap();
    assert!(matches!(
        s.deliver(&serial("MOLTO-1:3"), &code.code, NOW + 5),
        Err(Error::CodeReleased { .. })
    ));
    let entries = s.audit_entries().unwrap();
    let refusals = entries
        .iter()
        .filter(|e| e.action == "token.deliver" && e.outcome == "refused")
        .count();
    assert_eq!(refusals, 2, "each refusal is audited");

    // Steps no delivery window reaches any more are pruned when the
    // credential's next step is released; a purged secret's go with it.
    s.helpdesk_code(&helpdesk("bob@contoso.com"), NOW + 90_000)
        .unwrap();
    let report = s.verify_rows().unwrap();
    assert!(report.bad.is_empty(), "{report:?}");
    drop(s);
    let remaining = count_rows(&f, "released_steps");
    assert_eq!(
        remaining, 2,
        "bob's old step pruned, carol's gone with her secret, the enrolment's kept"
    );
}

/// A step released twice (the helpdesk asked again within its 30 seconds)
/// keeps what its first release wrote: the second writes no row and no
/// MAC, so a MAC removed behind oathdesk's back is not made again.
fn a_step_released_again_keeps_its_first_release(backend: Backend) {
    let f = populated(backend);
    let mut s = session(&f.location);
    let first = s
        .helpdesk_code(&helpdesk("carol@contoso.com"), NOW + 100)
        .unwrap();
    let step = first.counter;
    let at = |f: &Fixture, credential: i64| {
        scalar(
            f,
            &format!(
                "SELECT at FROM released_steps WHERE credential_id = {credential} AND counter = {step}"
            ),
        )
    };
    assert_eq!(at(&f, first.credential_id), (NOW + 100) as i64);
    // Its MAC removed: the tampering is reported ...
    f.execute(&format!(
        "DELETE FROM row_macs WHERE kind = 'released_step' AND id LIKE '%:{step:020}'"
    ));
    let missing = |s: &mut Session| {
        let report = s.verify_rows().unwrap();
        report.bad.iter().any(|b| b.kind == "released_step")
    };
    assert!(missing(&mut s), "the removed MAC is reported");
    // ... and still reported after the same step is released again.
    let again = s
        .helpdesk_code(&helpdesk("carol@contoso.com"), NOW + 105)
        .unwrap();
    assert_eq!(again.counter, step, "the same step");
    assert_eq!(again.code, first.code);
    assert_eq!(
        at(&f, first.credential_id),
        (NOW + 100) as i64,
        "the first release's time"
    );
    assert!(missing(&mut s), "not signed again by a second release");
    // An enrolment code is recorded in the change's own transaction: the
    // same there.
    let molto = serial("MOLTO-1:3");
    for time in [NOW + 100, NOW + 105] {
        let shown = s.enrolment_code(&molto, Verifier::Entra, time).unwrap();
        assert_eq!(shown.counter, step);
    }
    let (token, _) = s.token(&molto).unwrap();
    assert_eq!(at(&f, token.id), (NOW + 100) as i64);
    assert_eq!(
        scalar(
            &f,
            "SELECT count(*) FROM audit WHERE action = 'helpdesk.code' AND outcome = 'granted' \
             AND \"user\" = 'carol@contoso.com'"
        ),
        2,
        "both releases audited"
    );
}

fn count_rows(f: &Fixture, table: &str) -> i64 {
    scalar(f, &format!("SELECT count(*) FROM {table}"))
}

/// The first column of the one row `sql` answers.
fn scalar(f: &Fixture, sql: &str) -> i64 {
    match (&f.location, &f.schema) {
        (Location::Sqlite(path), _) => rusqlite::Connection::open(path)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap(),
        (_, Some(schema)) => schema.client().query_one(sql, &[]).unwrap().get(0),
        _ => unreachable!(),
    }
}

fn the_last_admin_keeps_the_role(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    assert_eq!(s.role(), Role::Admin, "the first operator is the admin");
    assert!(matches!(
        s.set_operator_role("alice", Role::Helpdesk, NOW),
        Err(Error::Refused(_))
    ));
    s.add_operator(
        "bob",
        NewOperator::Passphrase(&passphrase("bob"), TEST_KDF),
        Role::Helpdesk,
        NOW,
    )
    .unwrap();
    assert!(s.remove_operator("alice", NOW).is_err());
    s.set_operator_role("bob", Role::Admin, NOW).unwrap();
    s.set_operator_role("alice", Role::Auditor, NOW).unwrap();
    drop(s);
    // alice's key slot went with the admin role.
    assert!(matches!(
        Vault::open_at(&f.location)
            .unwrap()
            .unlock("alice", Unlock::Passphrase(b"alice pass")),
        Err(Error::NoKeySlot { .. })
    ));
    let console = unlock_as(&f.location, "bob")
        .unwrap()
        .unseal_key("test", NOW)
        .unwrap();
    let mut alice = Vault::open_at(&f.location)
        .unwrap()
        .unlock_with("alice", Unlock::Passphrase(b"alice pass"), &console)
        .unwrap();
    assert_eq!(alice.role(), Role::Auditor);
    assert!(matches!(
        alice.set_setting("helpdesk.codes_per_hour", 100, NOW),
        Err(Error::Forbidden { .. })
    ));
    let operators = unlock_as(&f.location, "bob").unwrap().operators().unwrap();
    let roles: Vec<(&str, &str)> = operators
        .iter()
        .map(|o| (o.name.as_str(), o.role.as_str()))
        .collect();
    assert_eq!(roles, [("alice", "auditor"), ("bob", "admin")]);
}

/// A vault written by the oathdesk of 2026-12-03 (schema version 4), kept
/// as the file it wrote: operators alice, bob, hd (passphrases "alice
/// pass", "bob pass", "hd pass long") and audrey; web accounts alice
/// (admin), hd (helpdesk), audrey (auditor); users bob, carol, dave and
/// alice.user; tokens 2100001 (bob, shipped), 2100002 (carol), MOLTO-9:3,
/// 2100003 (dave, lost); codes_per_hour 3; one helpdesk code.
#[test]
fn a_vault_of_version_4_migrates_signs_its_rows_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vault-v4.sqlite"),
        &path,
    )
    .unwrap();
    let location = Location::Sqlite(path);
    // The helpdesk web account unlocks first: it keeps its role, and signs
    // nothing (only an admin signs).
    let mut hd = Vault::open_at(&location)
        .unwrap()
        .unlock("hd", Unlock::Passphrase(b"hd pass long"))
        .unwrap();
    assert_eq!(hd.role(), Role::Helpdesk);
    assert!(matches!(
        hd.reveal_all(&CredentialFilter::default()),
        Err(Error::Forbidden { .. })
    ));
    drop(hd);
    let mut alice = Vault::open_at(&location)
        .unwrap()
        .unlock("alice", Unlock::Passphrase(b"alice pass"))
        .unwrap();
    assert_eq!(alice.role(), Role::Admin);
    let operators = alice.operators().unwrap();
    let roles: Vec<(&str, &str)> = operators
        .iter()
        .map(|o| (o.name.as_str(), o.role.as_str()))
        .collect();
    assert_eq!(
        roles,
        [
            ("alice", "admin"),
            ("audrey", "auditor"),
            ("bob", "admin"),
            ("hd", "helpdesk")
        ],
        "operators without a web account became admins; web accounts kept their roles"
    );
    let report = alice.verify_rows().unwrap();
    assert!(report.signed && report.bad.is_empty(), "{report:?}");
    // 4 credentials, 4 users, 4 devices, 4 operators, 1 setting.
    assert_eq!(report.checked, 17, "{report:?}");
    let chain = alice.audit_verify().unwrap();
    assert_eq!(chain.first_bad, None);
    let entries = alice.audit_entries().unwrap();
    let signing: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "vault.sign_rows")
        .collect();
    assert_eq!(signing.len(), 1);
    assert!(signing[0].detail.contains("became admin"));
    assert!(
        signing[0]
            .detail
            .contains(r#""key_slots_removed":["audrey","hd"]"#),
        "{}",
        signing[0].detail
    );
    // The helpdesk operator's key slot is gone: their password alone opens nothing.
    assert!(matches!(
        Vault::open_at(&location)
            .unwrap()
            .unlock("hd", Unlock::Passphrase(b"hd pass long")),
        Err(Error::NoKeySlot { .. })
    ));
    alice.set_helpdesk_policy(&desk_policy(), NOW).unwrap();
    // The old rows decide as before: a lost token gets no code, the others do.
    assert!(matches!(
        alice.helpdesk_code(&helpdesk("dave@contoso.com"), NOW),
        Err(Error::Refused(_))
    ));
    assert!(
        alice
            .helpdesk_code(&helpdesk("carol@contoso.com"), NOW)
            .is_ok()
    );
    assert_eq!(
        alice.setting(oathdesk_vault::settings::RATE_LIMIT).unwrap(),
        3
    );
    drop(alice);
    // From now on an edit is caught.
    rusqlite::Connection::open(location.sqlite_path().unwrap())
        .unwrap()
        .execute_batch("UPDATE credentials SET state = 'assigned' WHERE state = 'lost'")
        .unwrap();
    let mut bob = Vault::open_at(&location)
        .unwrap()
        .unlock("bob", Unlock::Passphrase(b"bob pass"))
        .unwrap();
    assert!(matches!(
        bob.helpdesk_code(&helpdesk("dave@contoso.com"), NOW),
        Err(Error::Altered { .. })
    ));
}

/// Swaps the `mac` column of two rows of `table` (ids `a` and `b`).
fn swap_macs(table: &str, a: i64, b: i64) -> String {
    format!(
        "CREATE TABLE swap AS SELECT id, mac FROM {table} WHERE id IN ({a}, {b}); \
         UPDATE {table} SET mac = (SELECT s.mac FROM swap s WHERE s.id <> {table}.id) \
         WHERE id IN ({a}, {b}); DROP TABLE swap"
    )
}

/// The MACs of credentials, users and devices are kept in their rows: two
/// rows' MACs swapped (each a genuine MAC of the vault) are refused and
/// listed, whichever of the two is acted on.
fn swapped_row_macs_are_refused_and_listed(backend: Backend) {
    refused_as_altered(
        backend,
        &swap_macs("credentials", 1, 2),
        "credential 1",
        |s| reveal_id(s, "1"),
    );
    refused_as_altered(
        backend,
        &swap_macs("credentials", 1, 2),
        "credential 2",
        |s| reveal_id(s, "2"),
    );
    refused_as_altered(
        backend,
        &swap_macs("users", 1, 2),
        "carol@contoso.com",
        |s| {
            s.helpdesk_code(&helpdesk("carol@contoso.com"), NOW + 60)
                .map(drop)
        },
    );
    refused_as_altered(backend, &swap_macs("devices", 1, 2), "device 1", |s| {
        s.add_token(token("2100001", Some(5), SEED, None), NOW)
            .map(drop)
    });
    // Both rows are listed by `vault verify`.
    let f = populated(backend);
    f.execute(&swap_macs("credentials", 1, 2));
    let report = session(&f.location).verify_rows().unwrap();
    let mut bad: Vec<&str> = report.bad.iter().map(|b| b.id.as_str()).collect();
    bad.sort();
    assert_eq!(
        bad,
        ["00000000000000000001", "00000000000000000002"],
        "{report:?}"
    );
}

/// A vault whose MACs of credentials, users and devices are rows of
/// `row_macs` (as every vault before they moved into their rows) is
/// migrated: the MACs move, nothing needs re-signing, every row verifies
/// and is acted on; a MAC whose row was deleted stays and is reported.
fn macs_kept_in_row_macs_move_into_their_rows(backend: Backend) {
    let f = populated(backend);
    let key = match backend {
        Backend::Sqlite => "printf('%020d', id)",
        Backend::Postgres => "lpad(id::text, 20, '0')",
    };
    // Back to the layout before the move.
    for (kind, table) in [
        ("credential", "credentials"),
        ("user", "users"),
        ("device", "devices"),
    ] {
        f.execute(&format!(
            "INSERT INTO row_macs (kind, id, mac) SELECT '{kind}', {key}, mac FROM {table}; \
             ALTER TABLE {table} DROP COLUMN mac"
        ));
    }
    // A credential deleted behind the vault's back, before the move.
    f.execute(&format!(
        "INSERT INTO row_macs (kind, id, mac) SELECT 'credential', '00000000000000000099', mac \
         FROM row_macs WHERE kind = 'credential' AND id = '00000000000000000001'; \
         DELETE FROM schema_migrations WHERE version >= \
             (SELECT version FROM schema_migrations WHERE name = '{}'); \
         DROP TABLE drift_series; DROP TABLE drift_sightings; DROP TABLE import_batches; \
         DROP TABLE import_records; DROP TABLE import_generations",
        "signed rows: the MACs of credentials, users and devices kept in their rows"
    ));
    // (The migrations after the move are undone too — today the drift
    // sightings', the drift series' and the staged imports' tables, and on
    // PostgreSQL migration 14's triggers, in place of the foreign keys of
    // credentials and events — so that the vault is at the version before it.)
    if backend == Backend::Postgres {
        f.execute(
            "DROP TRIGGER reference_lock ON devices; DROP TRIGGER reference_gone ON devices; \
             DROP TRIGGER reference_key ON devices; DROP TRIGGER reference_lock ON users; \
             DROP TRIGGER reference_gone ON users; DROP TRIGGER reference_key ON users; \
             DROP TRIGGER reference_lock ON credentials; \
             DROP TRIGGER reference_gone ON credentials; DROP TRIGGER reference_key ON credentials; \
             DROP TRIGGER reference_parents ON credentials; \
             DROP TRIGGER reference_parents ON events; DROP FUNCTION reference_lock_children(); \
             DROP FUNCTION reference_refuse_orphans(); DROP FUNCTION reference_check_parents(); \
             ALTER TABLE credentials ADD FOREIGN KEY (device_id) REFERENCES devices (id); \
             ALTER TABLE credentials ADD FOREIGN KEY (user_id) REFERENCES users (id); \
             ALTER TABLE events ADD FOREIGN KEY (credential_id) REFERENCES credentials (id);",
        );
    }
    let mut s = session(&f.location);
    let report = s.verify_rows().unwrap();
    assert!(report.signed);
    let bad: Vec<(&str, &str, &str)> = report
        .bad
        .iter()
        .map(|b| (b.kind, b.id.as_str(), b.problem))
        .collect();
    assert_eq!(
        bad,
        [("credential", "00000000000000000099", "deleted")],
        "{report:?}"
    );
    assert!(report.checked > 10, "{report:?}");
    reveal_id(&mut s, "2").unwrap();
    s.helpdesk_code(&helpdesk("carol@contoso.com"), NOW + 60)
        .unwrap();
    drop(s);
    assert_eq!(
        count_rows(&f, "row_macs WHERE kind IN ('user', 'device')"),
        0
    );
    // The moved MACs are checked: one edited after the move is caught.
    refused_after(&f, "UPDATE users SET upn = 'x' || upn WHERE id = 2", |s| {
        s.helpdesk_code(&helpdesk("xcarol@contoso.com"), NOW + 60)
            .map(drop)
    });
}

fn refused_after(f: &Fixture, sql: &str, act: impl FnOnce(&mut Session) -> Result<(), Error>) {
    f.execute(sql);
    let mut s = session(&f.location);
    assert!(matches!(act(&mut s), Err(Error::Altered { .. })), "{sql}");
}

/// An import large enough to be sealed and signed by a worker while the
/// writer writes (several chunks): every row arrives, in order, signed,
/// with a secret that opens to its own seed.
fn a_large_import_is_written_whole_signed_and_sealed(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let count = 9_000;
    let seed_of = |i: usize| format!("seed of token {i:05} 1234").into_bytes();
    let tokens: Vec<_> = (0..count)
        .map(|i| {
            let serial = format!("{:07}", 3_000_000 + i);
            let user = format!("user{i}@contoso.com");
            token(&serial, None, &seed_of(i), Some(&user))
        })
        .collect();
    let rows = s.add_tokens(tokens, NOW, "token.import").unwrap();
    assert_eq!(rows.len(), count);
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id), "in order");
    let report = s.verify_rows().unwrap();
    assert!(
        report.bad.is_empty(),
        "{:?}",
        &report.bad[..3.min(report.bad.len())]
    );
    assert!(report.checked >= 3 * count as u64, "{report:?}");
    // The first, a middle and the last secret open, each to its own seed.
    for i in [0, 4_500, count - 1] {
        let upn = format!("user{i}@contoso.com");
        let grant = s.helpdesk_code(&helpdesk(&upn), NOW).unwrap();
        assert_eq!(grant.code, code_at(&seed_of(i), NOW), "token {i}");
    }
}

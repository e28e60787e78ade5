//! Reads made together on PostgreSQL: under concurrency the requests are
//! read in each other's turns and each gets its own rows; a turn that ends
//! in a panic hands its requests back and passes on.

use super::*;
use crate::store::postgres::writer::tests::on_threads;
use crate::testing::ScratchSchema;

fn query(upn: &str) -> HelpdeskQuery<'_> {
    HelpdeskQuery {
        upn,
        setting: "helpdesk.codes_per_hour",
        policy_id: "helpdesk",
        action: "helpdesk.code",
        outcome: "granted",
        since: 1,
        since_day: 0,
    }
}

#[test]
fn concurrent_reads_are_made_for_each_other_and_each_gets_its_own() {
    let schema = ScratchSchema::new();
    let url = schema.url();
    let mut first = PgStore::create(&url).unwrap();
    // A user whose rows differ from the others' (nobody else exists).
    {
        let tx = first.write().unwrap();
        tx.user_insert("anna@contoso.com", None, 1).unwrap();
        tx.commit().unwrap();
    }
    let anna = first
        .read_single()
        .unwrap()
        .grant_and_helpdesk_rows(&[1; 32], &query("anna@contoso.com"))
        .unwrap();
    assert_eq!(anna.1.user.as_ref().unwrap().upn, "anna@contoso.com");
    on_threads(&url, 8, |store, who| {
        for n in 0..50 {
            let upn = if (who + n) % 3 == 0 {
                "ANNA@contoso.com".to_owned()
            } else {
                format!("w{who}.{n}@contoso.com")
            };
            let (grant, rows) = store.grant_and_helpdesk(&[1; 32], &query(&upn)).unwrap();
            assert_eq!(grant, GrantRows::default());
            match rows.user {
                Some(user) => {
                    assert!(upn.starts_with("ANNA"), "{upn}");
                    assert_eq!(user, anna.1.user.clone().unwrap());
                }
                None => assert!(!upn.starts_with("ANNA"), "{upn}"),
            }
        }
    });
    assert!(
        first.reads.read_for_others() > 0,
        "some requests were read in another's turn"
    );
}

#[test]
fn a_turn_that_panics_hands_its_requests_back_and_passes_on() {
    let reads = Reads::default();
    let batch = vec![
        Arc::new(ReadJob::of(&[1], &query("a@contoso.com"))),
        Arc::new(ReadJob::of(&[2], &query("b@contoso.com"))),
    ];
    let next = Arc::new(ReadJob::of(&[3], &query("c@contoso.com")));
    {
        let mut pending = lock(&reads.pending);
        pending.running = 1;
        pending.jobs.push_back(next.clone());
    }
    let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _turn = Turn {
            reads: &reads,
            batch: batch.clone(),
        };
        panic!("a turn that stops half-way");
    }));
    assert!(turn.is_err());
    for job in &batch {
        assert!(matches!(job.wait(), Slot::Alone), "read alone");
    }
    assert!(matches!(next.wait(), Slot::Run), "the next takes the turn");
    assert_eq!(lock(&reads.pending).running, 1, "handed on, not ended");
    // With nothing queued, a turn that ends is put down.
    drop(Turn {
        reads: &reads,
        batch: Vec::new(),
    });
    assert_eq!(lock(&reads.pending).running, 0);
}

#[test]
fn with_another_turn_under_way_a_turn_hands_on_only_enough_to_share() {
    let reads = Reads::default();
    let queued: Vec<Arc<ReadJob>> = (0..SHARED_TURN)
        .map(|n| Arc::new(ReadJob::of(&[n as u8], &query("q@contoso.com"))))
        .collect();
    {
        let mut pending = lock(&reads.pending);
        pending.running = 2;
        pending.jobs.extend(queued[1..].iter().cloned());
    }
    // Too few queued: the turn ends, and the other takes them.
    drop(Turn {
        reads: &reads,
        batch: Vec::new(),
    });
    {
        let pending = lock(&reads.pending);
        assert_eq!((pending.running, pending.jobs.len()), (1, SHARED_TURN - 1));
    }
    // Enough queued: handed on, both turns under way.
    {
        let mut pending = lock(&reads.pending);
        pending.running = 2;
        pending.jobs.push_front(queued[0].clone());
    }
    drop(Turn {
        reads: &reads,
        batch: Vec::new(),
    });
    assert!(matches!(queued[0].wait(), Slot::Run));
    let pending = lock(&reads.pending);
    assert_eq!((pending.running, pending.jobs.len()), (2, SHARED_TURN - 1));
}

#[test]
fn a_turn_takes_only_the_queued_reads_that_go_with_its_own() {
    let schema = ScratchSchema::new();
    let mut store = PgStore::create(&schema.url()).unwrap();
    let reads = Reads::default();
    let own = Arc::new(ReadJob::of(&[1], &query("a@contoso.com")));
    let mut other_setting = query("b@contoso.com");
    other_setting.setting = "helpdesk.codes_per_day";
    let apart = Arc::new(ReadJob::of(&[2], &other_setting));
    let along = Arc::new(ReadJob::of(&[3], &query("c@contoso.com")));
    {
        let mut pending = lock(&reads.pending);
        pending.running = 1;
        pending.jobs.extend([apart.clone(), along.clone()]);
    }
    reads.turn(&mut store, &own);
    // Its own read, alone: the one queued first does not go with it (and
    // stops the turn's taking), so it takes the next turn.
    assert!(matches!(own.wait(), Slot::Done(_)));
    assert_eq!(reads.read_for_others(), 0);
    assert!(matches!(apart.wait(), Slot::Run));
    let pending = lock(&reads.pending);
    assert_eq!(pending.jobs.len(), 1, "the other still queued");
    assert!(Arc::ptr_eq(&pending.jobs[0], &along));
}

#[test]
fn a_turn_whose_statement_fails_hands_each_request_back_to_read_alone() {
    let schema = ScratchSchema::new();
    let mut store = PgStore::create(&schema.url()).unwrap();
    let reads = Reads::default();
    let own = Arc::new(ReadJob::of(&[1], &query("a@contoso.com")));
    // A time the database cannot hold: the statement of the two fails.
    let mut out_of_range = query("b@contoso.com");
    out_of_range.since = u64::MAX;
    let bad = Arc::new(ReadJob::of(&[2], &out_of_range));
    {
        let mut pending = lock(&reads.pending);
        pending.running = 1;
        pending.jobs.push_back(bad.clone());
    }
    reads.turn(&mut store, &own);
    // Neither was read by the turn: each is handed back, to read alone.
    assert!(matches!(*lock(&own.slot), Slot::Alone));
    assert!(matches!(*lock(&bad.slot), Slot::Alone));
    assert_eq!(reads.read_for_others(), 0);
    assert_eq!(lock(&reads.pending).running, 0, "the turn was put down");
    // Read alone, the error is the bad request's only.
    assert!(
        reads
            .read(&mut store, &[1], &query("a@contoso.com"))
            .is_ok()
    );
    let error = reads.read(&mut store, &[2], &out_of_range).unwrap_err();
    assert!(error.to_string().contains("too large"), "{error}");
}

#[test]
fn a_turn_gives_each_request_its_own_grant_and_rows() {
    use crate::store::{GrantRow, WebAccountRow};
    let schema = ScratchSchema::new();
    let mut store = PgStore::create(&schema.url()).unwrap();
    let grant = |id: u8, account: &str| GrantRow {
        id: vec![id; 32],
        kind: "token".into(),
        account: account.into(),
        label: Some(format!("desk {id}")),
        scopes: "helpdesk.code".into(),
        wrapped_key: vec![id; 40],
        created_at: 1,
        expires_at: 99,
        last_used_at: 2,
    };
    {
        let tx = store.write().unwrap();
        tx.user_insert("anna@contoso.com", None, 1).unwrap();
        tx.user_insert("boris@contoso.com", None, 1).unwrap();
        for (name, role) in [("ada", "admin"), ("bo", "helpdesk")] {
            tx.web_account_put(&WebAccountRow {
                name: name.into(),
                role: role.into(),
                disabled: false,
                must_change_password: false,
                created_at: 1,
                created_by: "setup".into(),
                mac: vec![7; 32],
            })
            .unwrap();
        }
        tx.web_grant_put(&grant(1, "ada")).unwrap();
        tx.web_grant_put(&grant(2, "bo")).unwrap();
        tx.audit_key_put(1, b"sealed one").unwrap();
        tx.audit_key_put(2, b"sealed two").unwrap();
        tx.commit().unwrap();
    }
    // Requests that share a grant, one without a grant, the same request
    // twice: each gets the rows it would read alone.
    let asked: [(u8, &str); 6] = [
        (1, "anna@contoso.com"),
        (1, "boris@contoso.com"),
        (9, "anna@contoso.com"),
        (2, "ANNA@contoso.com"),
        (1, "anna@contoso.com"),
        (2, "nobody@contoso.com"),
    ];
    let jobs: Vec<Arc<ReadJob>> = asked
        .iter()
        .map(|(id, upn)| Arc::new(ReadJob::of(&[*id; 32], &query(upn))))
        .collect();
    let together = store
        .read_single()
        .unwrap()
        .grant_and_helpdesk_together(&jobs)
        .unwrap();
    assert_eq!(together.len(), jobs.len());
    for (job, (grant_rows, helpdesk_rows)) in jobs.iter().zip(&together) {
        let alone = store
            .read_single()
            .unwrap()
            .grant_and_helpdesk_rows(&job.grant, &job.query())
            .unwrap();
        assert_eq!(grant_rows, &alone.0, "{:?}", job.query().upn);
        assert_eq!(helpdesk_rows, &alone.1, "{:?}", job.query().upn);
        let expected = match job.grant[0] {
            9 => None,
            id => Some(grant(id, if id == 1 { "ada" } else { "bo" })),
        };
        assert_eq!(grant_rows.grant, expected);
        if let Some(expected) = &expected {
            let epochs: Vec<i64> = grant_rows.audit_keys.iter().map(|(e, _)| *e).collect();
            assert_eq!(epochs, [1, 2], "every grant with the keys");
            assert_eq!(
                grant_rows.account.as_ref().map(|a| a.name.as_str()),
                Some(expected.account.as_str())
            );
        }
    }
    let users: Vec<Option<&str>> = together
        .iter()
        .map(|(_, rows)| rows.user.as_ref().map(|u| u.upn.as_str()))
        .collect();
    assert_eq!(
        users,
        [
            Some("anna@contoso.com"),
            Some("boris@contoso.com"),
            Some("anna@contoso.com"),
            Some("anna@contoso.com"),
            Some("anna@contoso.com"),
            None
        ]
    );
}

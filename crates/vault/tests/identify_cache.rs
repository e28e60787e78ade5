//! The identify index a console keeps between requests: built once, kept
//! current by the vault's change marker whoever changes the vault, and
//! always equal to a fresh build.

mod common;

use common::*;
use oathdesk_otp::Window;
use oathdesk_vault::model::State;
use oathdesk_vault::store::{Store, StoreTx};
use oathdesk_vault::{AnyStore, IdentifyCache, Location, Session};

on_both_backends!(
    index_is_built_once_and_reused,
    changes_by_another_session_are_seen_by_the_next_identify,
    a_bulk_import_by_another_session_is_seen_by_the_next_identify,
    helpdesk_codes_do_not_move_the_marker,
    a_row_deleted_behind_oathdesks_back_leaves_the_index,
    the_kept_index_equals_a_fresh_build_after_random_changes,
);

/// The vault's identify generation, read as another process would.
fn marker(location: &Location) -> i64 {
    let mut store = AnyStore::open(location).unwrap();
    let tx = store.read().unwrap();
    tx.identify_generation().unwrap()
}

fn seed(n: u32) -> Vec<u8> {
    let mut seed = n.to_be_bytes().to_vec();
    seed.resize(20, 0x5a);
    seed
}

/// Two consecutive codes of `seed` at NOW: unique among the test's tokens.
fn find(
    s: &mut Session,
    cache: &IdentifyCache,
    seed: &[u8],
) -> Vec<(String, State, Option<String>)> {
    let first = code_at(seed, NOW);
    let second = code_at(seed, NOW + 30);
    s.identify_cached(cache, &[&first, &second], NOW, Window::symmetric(1), NOW)
        .unwrap()
        .into_iter()
        .map(|hit| (hit.credential, hit.state, hit.user))
        .collect()
}

fn index_is_built_once_and_reused(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    for i in 0..5 {
        s.add_token(token(&format!("ONCE-{i}"), None, &seed(i), None), NOW)
            .unwrap();
    }
    let cache = IdentifyCache::new();
    assert_eq!(cache.generation(), None);
    assert_eq!(find(&mut s, &cache, &seed(3)).len(), 1);
    assert_eq!(cache.secrets_opened(), 5);
    assert_eq!(cache.len(), 5);
    assert_eq!(cache.generation(), Some(marker(&f.location)));
    for i in 0..5 {
        assert_eq!(find(&mut s, &cache, &seed(i))[0].0, format!("ONCE-{i}"));
    }
    // Six searches, five secrets opened: the index was reused.
    assert_eq!(cache.secrets_opened(), 5);
    assert!(
        cache.memory_bytes() >= 5 * oathdesk_vault::identify::IdentifyIndex::BYTES_PER_CREDENTIAL
    );
    // A sealed console drops it; the next search builds it again.
    cache.clear();
    assert_eq!(cache.generation(), None);
    assert_eq!(find(&mut s, &cache, &seed(0)).len(), 1);
    assert_eq!(cache.secrets_opened(), 10);
}

fn changes_by_another_session_are_seen_by_the_next_identify(backend: Backend) {
    let f = fixture(backend);
    let mut console = session(&f.location);
    console.add_user("dana@contoso.com", None, NOW).unwrap();
    console
        .add_token(token("SEEN-1", None, &seed(1), None), NOW)
        .unwrap();
    let cache = IdentifyCache::new();
    assert_eq!(find(&mut console, &cache, &seed(1)).len(), 1);
    assert!(find(&mut console, &cache, &seed(2)).is_empty());

    // Another process (a second open of the vault) adds a token...
    let mut other = session(&f.location);
    other
        .add_token(token("SEEN-2", None, &seed(2), None), NOW)
        .unwrap();
    assert_eq!(
        find(&mut console, &cache, &seed(2)),
        vec![("SEEN-2".to_owned(), State::Burned, None)]
    );
    // ...and only its secret was opened to patch the index.
    assert_eq!(cache.secrets_opened(), 2);

    // Assigned, then lost: the hit says so (from the signed row), and the
    // index did not need to change.
    let before = marker(&f.location);
    other
        .assign(&serial("SEEN-2"), "dana@contoso.com", NOW)
        .unwrap();
    assert_eq!(
        find(&mut console, &cache, &seed(2)),
        vec![(
            "SEEN-2".to_owned(),
            State::Assigned,
            Some("dana@contoso.com".to_owned())
        )]
    );
    other
        .transition(&serial("SEEN-2"), State::Lost, Some("left on a train"), NOW)
        .unwrap();
    assert_eq!(find(&mut console, &cache, &seed(2))[0].1, State::Lost);
    other
        .transition(&serial("SEEN-1"), State::Retired, None, NOW)
        .unwrap();
    assert_eq!(find(&mut console, &cache, &seed(1))[0].1, State::Retired);
    assert_eq!(
        marker(&f.location),
        before,
        "states are not the index's business"
    );
    assert_eq!(cache.secrets_opened(), 2);

    // Purged elsewhere: gone from the next search.
    other.purge(&serial("SEEN-2"), NOW).unwrap();
    assert!(marker(&f.location) > before);
    assert!(find(&mut console, &cache, &seed(2)).is_empty());
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.secrets_opened(), 2);
}

/// An import large enough to be written in several chunks (and on
/// PostgreSQL by COPY): the store stamps its rows itself, with no insert
/// trigger (migrations 10 and 11), and every row must be stamped above the
/// generation the console last saw.
fn a_bulk_import_by_another_session_is_seen_by_the_next_identify(backend: Backend) {
    const TOKENS: u32 = 9_000;
    let f = fixture(backend);
    let mut console = session(&f.location);
    console
        .add_token(token("BULK-0", None, &seed(0), None), NOW)
        .unwrap();
    let cache = IdentifyCache::new();
    assert_eq!(find(&mut console, &cache, &seed(0)).len(), 1);
    let before = marker(&f.location);

    let mut other = session(&f.location);
    let tokens = (1..=TOKENS)
        .map(|i| token(&format!("BULK-{i}"), None, &seed(i), None))
        .collect();
    assert_eq!(
        other.add_tokens(tokens, NOW, "import").unwrap().len(),
        TOKENS as usize
    );
    assert!(marker(&f.location) > before);
    for i in [1, 4096, 4097, TOKENS] {
        assert_eq!(
            find(&mut console, &cache, &seed(i)),
            vec![(format!("BULK-{i}"), State::Burned, None)],
            "token {i}"
        );
    }
    // Patched with the new rows only, not rebuilt.
    assert_eq!(cache.len(), TOKENS as usize + 1);
    assert_eq!(cache.secrets_opened(), u64::from(TOKENS) + 1);
}

fn helpdesk_codes_do_not_move_the_marker(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(token("DESK-1", None, SEED, Some("carol@contoso.com")), NOW)
        .unwrap();
    let before = marker(&f.location);
    assert!(before > 0, "adding a token raised the marker");
    for i in 0..3 {
        let grant = s
            .helpdesk_code(&helpdesk("carol@contoso.com"), NOW + 31 * i)
            .unwrap();
        assert_eq!(grant.code, code_at(SEED, NOW + 31 * i));
    }
    assert_eq!(marker(&f.location), before);
}

fn a_row_deleted_behind_oathdesks_back_leaves_the_index(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    for i in 0..3 {
        s.add_token(token(&format!("GONE-{i}"), None, &seed(i), None), NOW)
            .unwrap();
    }
    let cache = IdentifyCache::new();
    assert_eq!(find(&mut s, &cache, &seed(1)).len(), 1);
    let id = s.token(&serial("GONE-1")).unwrap().0.id;
    // Someone with write access to the database: the trigger still leaves
    // a tombstone, so the index drops it. (The identify above kept a
    // drift sighting of the fresh code, which goes first.)
    f.execute(&format!(
        "DELETE FROM events WHERE credential_id = {id}; \
         DELETE FROM drift_sightings WHERE credential_id = {id}; \
         DELETE FROM drift_series WHERE credential_id = {id}; \
         DELETE FROM credentials WHERE id = {id};"
    ));
    assert!(find(&mut s, &cache, &seed(1)).is_empty());
    assert_eq!(cache.len(), 2);
    assert_eq!(find(&mut s, &cache, &seed(2)).len(), 1);
}

/// A small deterministic generator (xorshift): the test is repeatable.
struct Steps(u64);

impl Steps {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn the_kept_index_equals_a_fresh_build_after_random_changes(backend: Backend) {
    let f = fixture(backend);
    let mut console = session(&f.location);
    let cache = IdentifyCache::new();
    let mut steps = Steps(0x0a7d_e5c0_ffee_1234);
    let mut added: Vec<u32> = Vec::new();
    let mut next = 0u32;
    for round in 0..40 {
        // Changes come from another process each time.
        let mut other = session(&f.location);
        for _ in 0..=steps.below(3) {
            match steps.below(6) {
                0..=2 => {
                    let upn = format!("u{next}@contoso.com");
                    let user = (steps.below(2) == 0).then_some(upn.as_str());
                    other
                        .add_token(token(&format!("R-{next}"), None, &seed(next), user), NOW)
                        .unwrap();
                    added.push(next);
                    next += 1;
                }
                3 if !added.is_empty() => {
                    let pick = added.remove(steps.below(added.len() as u64) as usize);
                    other.purge(&serial(&format!("R-{pick}")), NOW).unwrap();
                }
                4 if !added.is_empty() => {
                    let pick = added[steps.below(added.len() as u64) as usize];
                    // Lost twice is refused; that is fine here.
                    let _ = other.transition(&serial(&format!("R-{pick}")), State::Lost, None, NOW);
                }
                5 if round % 10 == 9 => {
                    other.rekey(NOW).unwrap();
                    // The console's key is the old one: it unlocks again.
                    console = session(&f.location);
                }
                _ => {}
            }
        }
        if let Some(&pick) = added.last() {
            assert_eq!(
                find(&mut console, &cache, &seed(pick)).len(),
                1,
                "round {round}"
            );
        } else {
            find(&mut console, &cache, &seed(9999));
        }
        let mut kept = cache.credential_ids();
        let mut fresh = console.identify_index().unwrap().credential_ids();
        kept.sort_unstable();
        fresh.sort_unstable();
        assert_eq!(kept, fresh, "round {round}");
        assert_eq!(cache.generation(), Some(marker(&f.location)));
    }
    assert!(next > 20, "the sequence added tokens ({next})");
}

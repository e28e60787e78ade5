//! What a push costs: requests and wall time for N tokens against the
//! loopback Graph simulator, by batch size, with activation, a re-run and a
//! sync. Not criterion: each run needs a fresh vault and a fresh tenant, and
//! the number that matters most (requests) does not vary.
//!
//! `cargo bench -p oathdesk-entra --bench push` (N from OATHDESK_BENCH_TOKENS,
//! default 1000).

use std::time::{Duration, Instant};

use oathdesk_entra::auth::{Authenticator, ClientCredential, Endpoints, SignIn, TokenCache};
use oathdesk_entra::graph::Graph;
use oathdesk_entra::http::{Http, RetryPolicy};
use oathdesk_entra::sync::{self, Clock, PushOptions};
use oathdesk_entra_sim::{Simulator, permissions};
use oathdesk_otp::{Credential, Secret};
use oathdesk_vault::crypto::KdfParams;
use oathdesk_vault::model::{DeviceKind, State};
use oathdesk_vault::store::CredentialFilter;
use oathdesk_vault::{NewToken, Unlock, Vault};
use zeroize::Zeroizing;

const TOKENS_PER_USER: usize = 4;

struct Run {
    label: String,
    requests: u64,
    elapsed: Duration,
}

fn main() {
    // `cargo test --benches` runs this with --bench absent: keep that cheap.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("OATHDESK_BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 1000 } else { 20 });
    let mut runs = Vec::new();
    for batch in [1, 10, 50, 200] {
        runs.extend(scenario(n, batch, false));
    }
    runs.extend(scenario(n, 50, true));
    println!(
        "{:<44} {:>9} {:>10} {:>12}",
        "run", "requests", "wall", "per token"
    );
    for run in runs {
        println!(
            "{:<44} {:>9} {:>8.2} s {:>9.2} ms",
            run.label,
            run.requests,
            run.elapsed.as_secs_f64(),
            run.elapsed.as_secs_f64() * 1000.0 / n as f64
        );
    }
}

/// A fresh vault of `n` tokens and a fresh tenant; push (and activate),
/// then push again and sync.
fn scenario(n: usize, batch: usize, activate: bool) -> Vec<Run> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let kdf = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    Vault::create(&path, "alice", b"pass", kdf, sync::now()).unwrap();
    let mut session = Vault::open(&path)
        .unwrap()
        .unlock("alice", Unlock::Passphrase(b"pass"))
        .unwrap();
    let sim = Simulator::start();
    sim.add_app("bench", "secret", &permissions::ALL);
    let tokens: Vec<NewToken> = (0..n)
        .map(|i| {
            let user = format!("user{}@contoso.com", i / TOKENS_PER_USER);
            if i % TOKENS_PER_USER == 0 {
                sim.add_user(&user, false);
            }
            let mut seed = vec![0u8; 20];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            NewToken {
                serial: Some(format!("MOLTO{:05}", i / 100)),
                slot: Some((i % 100) as u32),
                device_kind: DeviceKind::MultiProfile,
                manufacturer: Some("Token2".into()),
                model: Some("Molto2".into()),
                device_slots: 100,
                credential: Credential::totp(Secret::from_bytes(seed)),
                label: None,
                user: Some(user),
                state: State::Burned,
            }
        })
        .collect();
    session.add_tokens(tokens, sync::now(), "bench").unwrap();

    let http = Http::new(RetryPolicy::default());
    let sign_in = SignIn::new(
        &http,
        Endpoints::new(&sim.url(), &sim.url(), sim.tenant()).unwrap(),
        "bench",
        Some(ClientCredential::Secret(Zeroizing::new("secret".into()))),
    )
    .unwrap();
    let auth = Authenticator::new(sign_in, false, TokenCache::default());
    let graph = Graph::new(&http, &auth);
    let options = PushOptions {
        batch,
        activate,
        ..PushOptions::default()
    };
    let what = if activate { "push --activate" } else { "push" };
    let mut runs = Vec::new();
    let mut measure = |label: String, run: &mut dyn FnMut()| {
        let before = http.stats().requests;
        let started = Instant::now();
        run();
        runs.push(Run {
            label,
            requests: http.stats().requests - before,
            elapsed: started.elapsed(),
        });
    };
    let push = |session: &mut oathdesk_vault::Session| {
        sync::push(
            session,
            &graph,
            sim.tenant(),
            &CredentialFilter::default(),
            &options,
            &Clock::system(),
        )
        .unwrap()
    };
    measure(format!("{what} {n} tokens, batch {batch}"), &mut || {
        let report = push(&mut session);
        let done = if activate { "activated" } else { "created" };
        assert_eq!(report.count(done), n, "{:?}", report.lines.first());
    });
    assert_eq!(sim.devices().len(), n);
    if activate || batch == 50 {
        measure(
            format!("  re-run (nothing to do), batch {batch}"),
            &mut || {
                assert_eq!(push(&mut session).count("present"), n);
            },
        );
        measure("  sync".to_string(), &mut || {
            let report = sync::sync(
                &mut session,
                &graph,
                sim.tenant(),
                "{serial}-{slot}",
                sync::now(),
            )
            .unwrap();
            assert_eq!(report.in_sync, n);
        });
    }
    runs
}

//! What listing a large directory costs: seed N users with their data on
//! file and managers in the loopback Graph simulator, then list them with
//! `Graph::users_with_profile` (asking for 999 a page; Graph, and the
//! simulator, give 100 while expanding the manager) and page by page at
//! Graph's default of 100, counting requests and wall time.
//!
//! `cargo bench -p oathdesk-entra --bench users` (N from
//! OATHDESK_BENCH_USERS, default 10000).

use std::time::Instant;

use oathdesk_entra::auth::{Authenticator, ClientCredential, Endpoints, SignIn, TokenCache};
use oathdesk_entra::graph::Graph;
use oathdesk_entra::http::{Http, RetryPolicy};
use oathdesk_entra_sim::{Simulator, permissions};
use zeroize::Zeroizing;

fn main() {
    // `cargo test --benches` runs this with --bench absent: keep that cheap.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("OATHDESK_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 10_000 } else { 300 });
    let sim = Simulator::start();
    sim.add_app("bench", "secret", &permissions::ALL);
    let started = Instant::now();
    sim.seed_directory(n);
    println!(
        "seeded {n} users in {:.3} s",
        started.elapsed().as_secs_f64()
    );

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
    graph.policy().unwrap(); // signed in before timing

    let before = http.stats().requests;
    let started = Instant::now();
    let users = graph.users_with_profile().unwrap();
    assert_eq!(users.len(), n);
    println!(
        "users_with_profile ($top=999): {:.3} s, {} requests",
        started.elapsed().as_secs_f64(),
        http.stats().requests - before
    );

    let before = http.stats().requests;
    let started = Instant::now();
    let mut count = 0;
    for page in graph.user_profile_pages(None).unwrap() {
        count += page.unwrap().len();
    }
    assert_eq!(count, n);
    println!(
        "user_profile_pages(None) (pages of 100): {:.3} s, {} requests",
        started.elapsed().as_secs_f64(),
        http.stats().requests - before
    );
}

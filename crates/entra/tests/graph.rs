//! The real Entra client against the loopback Graph simulator: sign-in,
//! inventory, paging, throttling, assignment, activation with computed
//! codes, replay, permissions.

use std::time::{Duration, Instant};

use oathdesk_entra::activation::code_to_send;
use oathdesk_entra::assertion::CertificateCredential;
use oathdesk_entra::auth::{Authenticator, ClientCredential, Endpoints, SignIn, TokenCache};
use oathdesk_entra::graph::{Graph, GraphDevice, VerificationCode};
use oathdesk_entra::http::{Http, RetryPolicy};
use oathdesk_entra::{Error, Operation};
use oathdesk_entra_sim::{FaultKind, Simulator, permissions, roles};
use oathdesk_otp::{Algorithm, Digits, Secret, TimeStep, Totp};
use zeroize::Zeroizing;

const APP: &str = "11111111-2222-4333-8444-555555555555";
const SECRET: &str = "app secret ~ with & odd = characters";
const TEST_CERT: &str = include_str!("data/test-app.pem");

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

fn endpoints(sim: &Simulator) -> Endpoints {
    Endpoints::new(&sim.url(), &sim.url(), sim.tenant()).unwrap()
}

fn app_auth<'h>(sim: &Simulator, http: &'h Http, secret: &str) -> Authenticator<'h> {
    let sign_in = SignIn::new(
        http,
        endpoints(sim),
        APP,
        Some(ClientCredential::Secret(Zeroizing::new(secret.into()))),
    )
    .unwrap();
    Authenticator::new(sign_in, false, TokenCache::default())
}

fn device(serial: &str, secret: &Secret, period: u64) -> GraphDevice {
    GraphDevice {
        serial_number: Some(serial.into()),
        manufacturer: Some("Token2".into()),
        model: Some("Molto2".into()),
        secret_key: Some(secret.to_base32().to_string()),
        time_interval_in_seconds: Some(period),
        hash_function: Some("hmacsha1".into()),
        ..GraphDevice::default()
    }
}

fn secret(byte: u8) -> Secret {
    Secret::from_bytes(vec![byte; 20])
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

#[test]
fn push_list_assign_and_activate_with_the_computed_code() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let bob = sim.add_user("bob@contoso.com", false);
    sim.set_page_size(2);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http, SECRET);
    let graph = Graph::new(&http, &auth);

    let devices: Vec<GraphDevice> = (1..=3)
        .map(|i| device(&format!("MOLTO-0{i}"), &secret(i), 30))
        .collect();
    let created = graph.create_devices(&devices).unwrap();
    assert_eq!(created.len(), 3);
    assert_eq!(created[1].content_id.as_deref(), Some("2"));
    assert!(
        created.iter().all(|d| d.secret_key.is_none()),
        "secrets are write-only"
    );
    assert!(
        created
            .iter()
            .all(|d| d.status.as_deref() == Some("available"))
    );

    sim.clear_log();
    let listed = graph.devices().unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(
        sim.log().len(),
        2,
        "three devices in pages of two: {:?}",
        sim.log()
    );
    // A next page on another host is not fetched with the token.
    sim.set_next_link_base("http://127.0.0.2:1");
    let error = graph.devices().unwrap_err();
    assert!(error.to_string().contains("another host"), "{error}");
    sim.set_next_link_base(&sim.url());
    let found = graph.devices_by_serial("MOLTO-02").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, created[1].id);

    let user = graph.user("bob@contoso.com").unwrap();
    assert_eq!(user.id, bob);
    let method = graph
        .assign(&user.id, created[1].id.as_deref().unwrap())
        .unwrap();
    assert_eq!(
        graph
            .device(created[1].id.as_deref().unwrap())
            .unwrap()
            .status
            .as_deref(),
        Some("assigned")
    );
    let totp = Totp::new(&secret(2), Algorithm::Sha1, Digits::SIX, TimeStep::DEFAULT);
    let sleep = |d: Duration| std::thread::sleep(d);
    let (code, counter) = code_to_send(&totp, None, &unix_now, &sleep).unwrap();
    graph
        .activate(&user.id, &method.id, &code, Some("Bob's Molto2 profile 2"))
        .unwrap();
    let sim_device = sim
        .devices()
        .into_iter()
        .find(|d| d.serial == "MOLTO-02")
        .unwrap();
    assert_eq!(sim_device.status, "activated");
    assert_eq!(sim_device.last_counter, Some(counter));
    let methods = graph.methods(&user.id).unwrap();
    assert_eq!(methods.len(), 1);
    assert_eq!(
        methods[0].device.as_ref().and_then(|d| d.status.as_deref()),
        Some("activated")
    );

    // Unassigned and assigned again, the same code is a replay.
    graph.unassign(&user.id, &method.id).unwrap();
    let method = graph
        .assign(&user.id, created[1].id.as_deref().unwrap())
        .unwrap();
    let replay = graph
        .activate(&user.id, &method.id, &code, None)
        .unwrap_err();
    assert!(replay.to_string().contains("already used"), "{replay}");
    // The next step's code is new (code_to_send would wait for that step).
    let fresh = VerificationCode::new(&totp.hotp().generate(counter + 1).to_string()).unwrap();
    graph.activate(&user.id, &method.id, &fresh, None).unwrap();
}

#[test]
fn a_wrong_code_fails_activation_and_a_code_of_another_secret_too() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let bob = sim.add_user("bob@contoso.com", false);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http, SECRET);
    let graph = Graph::new(&http, &auth);
    let created = graph.create_device(&device("T-1", &secret(7), 60)).unwrap();
    let id = created.id.unwrap();
    // A code this token never shows within the ±2 day activation window
    // (a random one would, with a chance of 5,761 in a million).
    let step = TimeStep::new(60, 0).unwrap();
    let right = Totp::new(&secret(7), Algorithm::Sha1, Digits::SIX, step);
    let now = step.counter_at(unix_now().as_secs()).unwrap();
    let window: std::collections::HashSet<String> = (now - 2880..=now + 2882)
        .map(|c| right.hotp().generate(c).to_string())
        .collect();
    let wrong = (0..)
        .map(|n: u32| format!("{:06}", n * 7919 % 1_000_000))
        .find(|code| !window.contains(code))
        .unwrap();
    let error = graph
        .assign_and_activate(&bob, &id, &VerificationCode::new(&wrong).unwrap(), None)
        .unwrap_err();
    assert!(error.to_string().contains("invalid"), "{error}");
    let state = &sim.devices()[0];
    assert_eq!(state.status, "failedActivation");
    assert_eq!(state.assigned_to, None);
    // The right code of two days ago is still inside the 60 s window; three days is not.
    // (The first code from three days back that no step in the window repeats.)
    let old = (now - 3 * 1440..)
        .map(|c| right.hotp().generate(c).to_string())
        .find(|code| !window.contains(code))
        .unwrap();
    assert!(
        graph
            .assign_and_activate(&bob, &id, &VerificationCode::new(&old).unwrap(), None)
            .is_err()
    );
    let recent = right
        .generate_at(unix_now().as_secs() - 2 * 86_400 + 120)
        .unwrap()
        .to_string();
    graph
        .assign_and_activate(&bob, &id, &VerificationCode::new(&recent).unwrap(), None)
        .unwrap();
    assert_eq!(sim.devices()[0].status, "activated");
    assert_eq!(sim.devices()[0].assigned_to.as_deref(), Some(bob.as_str()));
}

#[test]
fn throttling_is_retried_after_retry_after_and_gives_up_in_the_end() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http, SECRET);
    let graph = Graph::new(&http, &auth);
    graph.create_device(&device("T-1", &secret(1), 30)).unwrap();

    sim.fault(
        Some("GET"),
        "hardwareOathDevices",
        2,
        FaultKind::Throttle { retry_after: 1 },
    );
    let before = http.stats();
    let started = Instant::now();
    assert_eq!(graph.devices().unwrap().len(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 twice"
    );
    let after = http.stats();
    assert_eq!(after.retries - before.retries, 2);
    assert_eq!(after.requests - before.requests, 3);

    // 503 without Retry-After: exponential backoff, then success.
    sim.fault(
        None,
        "hardwareOathDevices",
        3,
        FaultKind::Fail { status: 503 },
    );
    assert_eq!(graph.devices().unwrap().len(), 1);

    // More throttling than attempts: a clear error.
    sim.fault(
        None,
        "hardwareOathDevices",
        10,
        FaultKind::Throttle { retry_after: 0 },
    );
    let error = graph.devices().unwrap_err();
    assert!(
        matches!(error, Error::GaveUp { attempts: 4, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("429"), "{error}");
    // A server asking for more than max_retry_after is not waited for.
    sim.fault(
        None,
        "hardwareOathDevices",
        1,
        FaultKind::Throttle { retry_after: 3600 },
    );
    let started = Instant::now();
    assert!(graph.devices().is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn duplicate_serials_are_refused_and_bulk_creates_are_all_or_nothing() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http, SECRET);
    let graph = Graph::new(&http, &auth);
    graph
        .create_device(&device("DUP-1", &secret(1), 30))
        .unwrap();
    let error = graph
        .create_device(&device("DUP-1", &secret(2), 30))
        .unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
    let error = graph
        .create_devices(&[
            device("NEW-1", &secret(3), 30),
            device("DUP-1", &secret(4), 30),
        ])
        .unwrap_err();
    assert!(error.to_string().contains("@contentId 2"), "{error}");
    assert_eq!(
        sim.devices().len(),
        1,
        "nothing of the failed bulk was created"
    );
    // Entra's limits are enforced by the simulator too.
    let mut bad = device("BAD-1", &secret(5), 45);
    let error = graph.create_device(&bad).unwrap_err();
    assert!(error.to_string().contains("30 or 60"), "{error}");
    bad.time_interval_in_seconds = Some(30);
    bad.secret_key = Some("0123456789abcdef".into());
    assert!(
        graph
            .create_device(&bad)
            .unwrap_err()
            .to_string()
            .contains("Base32")
    );
}

#[test]
fn a_missing_permission_names_the_permission_and_the_least_role() {
    let sim = Simulator::start();
    sim.add_app(
        APP,
        SECRET,
        &[permissions::POLICY_READ, permissions::USERS_READ],
    );
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http, SECRET);
    let graph = Graph::new(&http, &auth);
    assert!(graph.devices().unwrap().is_empty(), "reading is allowed");
    let error = graph
        .create_devices(&[device("X-1", &secret(1), 30)])
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(
            error,
            Error::Forbidden {
                operation: Operation::CreateDevices,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        text.contains("Policy.ReadWrite.AuthenticationMethod"),
        "{text}"
    );
    assert!(
        text.contains("Authentication Policy Administrator"),
        "{text}"
    );
    let bob = sim.add_user("bob@contoso.com", false);
    let text = graph.methods(&bob).unwrap_err().to_string();
    assert!(
        text.contains("UserAuthenticationMethod.ReadWrite.All"),
        "{text}"
    );
    assert!(text.contains("Authentication Administrator"), "{text}");
}

#[test]
fn sign_in_failures_say_what_to_fix() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http, "wrong secret");
    let error = Graph::new(&http, &auth).devices().unwrap_err();
    let text = error.to_string();
    assert!(text.contains("OATHDESK_ENTRA_CLIENT_SECRET"), "{text}");
    assert!(
        !text.contains("wrong secret"),
        "the secret is never echoed: {text}"
    );
    let sign_in = SignIn::new(
        &http,
        Endpoints::new(&sim.url(), &sim.url(), "fabrikam.onmicrosoft.com").unwrap(),
        APP,
        Some(ClientCredential::Secret(Zeroizing::new(SECRET.into()))),
    )
    .unwrap();
    let text = sign_in.client_credentials(0).unwrap_err().to_string();
    assert!(text.contains("OATHDESK_ENTRA_TENANT"), "{text}");
}

#[test]
fn expired_tokens_are_renewed_once() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http, SECRET);
    let graph = Graph::new(&http, &auth);
    graph.devices().unwrap();
    let first = auth.cached().unwrap();
    sim.expire_tokens();
    graph.devices().unwrap();
    let second = auth.cached().unwrap();
    assert_ne!(first.access_token, second.access_token);
    assert!(auth.changed_cache().is_some());
}

#[test]
fn certificate_credentials_sign_a_client_assertion() {
    let sim = Simulator::start();
    sim.add_certificate_app(APP, TEST_CERT, &permissions::ALL);
    let http = Http::new(policy());
    let certificate = CertificateCredential::from_pem(TEST_CERT).unwrap();
    assert_eq!(certificate.thumbprint().len(), 40);
    let sign_in = SignIn::new(
        &http,
        endpoints(&sim),
        APP,
        Some(ClientCredential::Certificate(certificate)),
    )
    .unwrap();
    let auth = Authenticator::new(sign_in, false, TokenCache::default());
    let graph = Graph::new(&http, &auth);
    graph.create_device(&device("C-1", &secret(1), 30)).unwrap();
    assert_eq!(graph.devices().unwrap().len(), 1);
    // A secret is not accepted for a certificate app.
    let auth = app_auth(&sim, &http, SECRET);
    assert!(Graph::new(&http, &auth).devices().is_err());
    // A PEM without a key is refused with the reason.
    let only_cert: String = TEST_CERT
        .split_inclusive('\n')
        .take_while(|l| !l.contains("BEGIN PRIVATE KEY"))
        .collect();
    let error = CertificateCredential::from_pem(&only_cert).err().unwrap();
    assert!(error.to_string().contains("private key"), "{error}");
}

#[test]
fn device_code_sign_in_for_an_admin_and_roles_that_fall_short() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    sim.add_user("admin@contoso.com", true);
    sim.set_roles("admin@contoso.com", &[roles::AUTH_POLICY_ADMIN]);
    let bob = sim.add_user("bob@contoso.com", false);
    let http = Http::new(policy());
    let sign_in = SignIn::new(&http, endpoints(&sim), APP, None).unwrap();
    let code = sign_in.start_device_code().unwrap();
    assert!(code.message.contains(&code.user_code));
    let pending = std::cell::Cell::new(0);
    let token = sign_in
        .poll_device_code(&code, &|| unix_now().as_secs(), &|_| {
            pending.set(pending.get() + 1);
            // The admin completes the sign-in while oathdesk waits.
            assert!(sim.approve_device_code(&code.user_code, "admin@contoso.com"));
        })
        .unwrap();
    assert_eq!(pending.get(), 1);
    assert_eq!(token.account.as_deref(), Some("admin@contoso.com"));
    assert!(token.refresh_token.is_some());

    let auth = Authenticator::new(sign_in, true, TokenCache::default());
    auth.store(token);
    let graph = Graph::new(&http, &auth);
    graph.create_device(&device("D-1", &secret(1), 30)).unwrap();
    // The Authentication Policy Administrator manages the inventory but not users' methods.
    let error = graph.methods(&bob).unwrap_err();
    assert!(
        error.to_string().contains("Authentication Administrator"),
        "{error}"
    );
    // The refresh token renews an expired access token.
    sim.expire_tokens();
    assert_eq!(graph.devices().unwrap().len(), 1);
}

#[test]
fn five_oath_methods_per_user_and_unassign_before_delete() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let bob = sim.add_user("bob@contoso.com", false);
    sim.set_software_oath("bob@contoso.com", 4);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http, SECRET);
    let graph = Graph::new(&http, &auth);
    let created = graph
        .create_devices(&[device("F-1", &secret(1), 30), device("F-2", &secret(2), 30)])
        .unwrap();
    let first = created[0].id.clone().unwrap();
    let method = graph.assign(&bob, &first).unwrap();
    let error = graph
        .assign(&bob, created[1].id.as_deref().unwrap())
        .unwrap_err();
    assert!(error.to_string().contains("maximum of 5"), "{error}");
    let error = graph.delete_device(&first).unwrap_err();
    assert!(error.to_string().contains("unassign"), "{error}");
    let error = graph
        .update_device(
            &first,
            &GraphDevice {
                display_name: Some("x".into()),
                ..GraphDevice::default()
            },
        )
        .unwrap_err();
    assert!(error.to_string().contains("unassigned"), "{error}");
    graph.unassign(&bob, &method.id).unwrap();
    graph
        .update_device(
            &first,
            &GraphDevice {
                display_name: Some("Spare".into()),
                ..GraphDevice::default()
            },
        )
        .unwrap();
    assert_eq!(
        graph.device(&first).unwrap().display_name.as_deref(),
        Some("Spare")
    );
    graph.delete_device(&first).unwrap();
    let error = graph.device(&first).unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
}

#[test]
fn the_policy_reads_and_switches() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    sim.set_policy_state("disabled");
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http, SECRET);
    let graph = Graph::new(&http, &auth);
    assert_eq!(graph.policy().unwrap().state, "disabled");
    graph.set_policy_state(true).unwrap();
    assert_eq!(graph.policy().unwrap().state, "enabled");
}

#[test]
fn by_serial_activation_needs_a_unique_serial() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let bob = sim.add_user("bob@contoso.com", false);
    // Two tokens with one serial (as the legacy CSV allowed).
    sim.seed_device("SHARED", &secret(1).to_base32(), 30);
    sim.seed_device("SHARED", &secret(2).to_base32(), 30);
    sim.seed_device("UNIQUE", &secret(3).to_base32(), 30);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http, SECRET);
    let graph = Graph::new(&http, &auth);
    let code = |byte: u8| {
        let totp = Totp::new(
            &secret(byte),
            Algorithm::Sha1,
            Digits::SIX,
            TimeStep::DEFAULT,
        );
        VerificationCode::new(&totp.generate_at(unix_now().as_secs()).unwrap().to_string()).unwrap()
    };
    let error = graph
        .assign_and_activate_by_serial(&bob, "SHARED", &code(1), None)
        .unwrap_err();
    assert!(error.to_string().contains("More than one"), "{error}");
    graph
        .assign_and_activate_by_serial(&bob, "UNIQUE", &code(3), Some("Bob's token"))
        .unwrap();
    assert_eq!(graph.devices_by_serial("SHARED").unwrap().len(), 2);
    assert_eq!(
        graph.devices_by_serial("UNIQUE").unwrap()[0]
            .status
            .as_deref(),
        Some("activated")
    );
}

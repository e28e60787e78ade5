//! What the server's tests share: a vault with an account of every role,
//! the router in process, and a real server on a loopback port.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use oathdesk_server::{AppState, FirstRun, Settings, prepare, router};
use oathdesk_vault::crypto::KdfParams;
use oathdesk_vault::web::{SETUP_OPERATOR, ThrottlePolicy};
use oathdesk_vault::{Unlock, Vault};

/// Cheap Argon2id: the default costs half a second per login.
pub const KDF: KdfParams = KdfParams {
    memory_kib: 256,
    iterations: 1,
    parallelism: 1,
};

pub const ADMIN: (&str, &str) = ("ada", "ada's long password");
pub const HELPDESK: (&str, &str) = ("hal", "hal's long password");
pub const PROVISIONER: (&str, &str) = ("pia", "pia's long password");
pub const AUDITOR: (&str, &str) = ("aud", "aud's long password");

pub fn settings() -> Settings {
    Settings {
        kdf: KDF,
        account_throttle: ThrottlePolicy {
            max_failures: 3,
            window: 900,
            lockout: 900,
        },
        ..Settings::default()
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub state: Arc<AppState>,
}

/// A vault as `oathdesk serve` creates it, before setup; and its code.
pub fn fresh() -> (Fixture, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let FirstRun::Created { setup_code } = prepare(&path.clone().into(), KDF, now()).unwrap()
    else {
        panic!("a new vault needs setup");
    };
    let state = Arc::new(AppState::new(path.clone(), settings()));
    (Fixture { dir, path, state }, setup_code)
}

/// A set-up vault with one account per role.
pub fn staffed() -> Fixture {
    let (fixture, code) = fresh();
    let mut setup = Vault::open(&fixture.path)
        .unwrap()
        .unlock(SETUP_OPERATOR, Unlock::Passphrase(code.as_bytes()))
        .unwrap();
    setup
        .complete_setup(ADMIN.0, ADMIN.1.as_bytes(), KDF, 3600, now())
        .unwrap();
    let mut admin = Vault::open(&fixture.path)
        .unwrap()
        .unlock(ADMIN.0, Unlock::Passphrase(ADMIN.1.as_bytes()))
        .unwrap();
    for ((name, password), role) in [
        (HELPDESK, "helpdesk"),
        (PROVISIONER, "provisioner"),
        (AUDITOR, "auditor"),
    ] {
        admin
            .add_web_account(name, password.as_bytes(), KDF, role, false, now())
            .unwrap();
    }
    // The console was unsealed (as an admin's sign-in does): helpdesk and
    // auditor accounts hold no key of their own.
    fixture
        .state
        .unseal(admin.unseal_key("test", now()).unwrap());
    fixture
}

impl Fixture {
    pub fn app(&self) -> axum::Router {
        router(self.state.clone())
    }

    /// Serves on a loopback port until the returned sender is dropped.
    pub async fn serve(&self) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = self.app();
        tokio::spawn(async move {
            oathdesk_server::serve(listener, app, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        (address, stop)
    }
}

impl Fixture {
    /// Serves over TLS with a self-signed certificate (secure cookies).
    pub async fn serve_tls(&self) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let prepared = oathdesk_server::tls::prepare(&oathdesk_server::tls::Tls::SelfSigned {
            names: vec!["localhost".into(), "127.0.0.1".into()],
        })
        .unwrap();
        let state = Arc::new(AppState::new(
            self.path.clone(),
            Settings {
                secure_cookies: true,
                ..settings()
            },
        ));
        if let Some(key) = self.state.console_key() {
            state.unseal(key);
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            oathdesk_server::serve_tls(listener, router(state), prepared.config, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        (address, stop)
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The RFC 4226 test secret.
pub const SEED: &[u8] = b"12345678901234567890";

/// Adds a classic token holding `seed`, assigned to `user` and shipped.
pub fn ship_token(fixture: &Fixture, serial: &str, user: &str, seed: &[u8]) {
    ship_token_of(
        fixture,
        serial,
        user,
        seed,
        oathdesk_vault::model::DeviceKind::Classic,
    );
}

/// [`ship_token`] of another kind of hardware (a single-profile token's
/// clock can be set; a classic token's cannot).
pub fn ship_token_of(
    fixture: &Fixture,
    serial: &str,
    user: &str,
    seed: &[u8],
    kind: oathdesk_vault::model::DeviceKind,
) {
    use oathdesk_otp::{Credential, Secret};
    use oathdesk_vault::NewToken;
    use oathdesk_vault::model::{DeviceKind, State};
    let model = if kind == DeviceKind::Classic {
        "C202"
    } else {
        "miniOTP-2"
    };
    let mut admin = Vault::open(&fixture.path)
        .unwrap()
        .unlock(ADMIN.0, Unlock::Passphrase(ADMIN.1.as_bytes()))
        .unwrap();
    admin
        .add_token(
            NewToken {
                serial: Some(serial.into()),
                slot: None,
                device_kind: kind,
                manufacturer: Some("Token2".into()),
                model: Some(model.into()),
                device_slots: 1,
                credential: Credential::totp(Secret::from_bytes(seed.to_vec())),
                label: None,
                user: Some(user.into()),
                state: State::Stock,
            },
            now(),
        )
        .unwrap();
    admin
        .transition(&serial.parse().unwrap(), State::Shipped, Some("DHL"), now())
        .unwrap();
}

/// The library's TOTP (SHA-1, 6 digits, 30 s) of a seed.
pub fn totp(seed: &[u8]) -> oathdesk_otp::Totp {
    use oathdesk_otp::{Algorithm, Digits, Secret, TimeStep, Totp};
    Totp::new(
        &Secret::from_bytes(seed.to_vec()),
        Algorithm::Sha1,
        Digits::new(6).unwrap(),
        TimeStep::DEFAULT,
    )
}

/// An admin's session on the fixture's vault (for setting up what a test needs).
pub fn admin_session(fixture: &Fixture) -> oathdesk_vault::Session {
    Vault::open(&fixture.path)
        .unwrap()
        .unlock(ADMIN.0, Unlock::Passphrase(ADMIN.1.as_bytes()))
        .unwrap()
}

/// Another web account (no password change due).
pub fn add_account(fixture: &Fixture, (name, password): (&str, &str), role: &str) {
    admin_session(fixture)
        .add_web_account(name, password.as_bytes(), KDF, role, false, now())
        .unwrap();
}

/// Data on file for a user already in the vault (a call-back needs a phone
/// number on file).
pub fn give_facts(fixture: &Fixture, upn: &str, values: &[(&str, &str)]) {
    use oathdesk_vault::FactsUpdate;
    let report = admin_session(fixture)
        .update_user_facts(
            vec![FactsUpdate {
                upn: upn.into(),
                display_name: None,
                values: values
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), Some((*value).to_owned())))
                    .collect(),
            }],
            "csv:users.csv",
            false,
            now(),
        )
        .unwrap();
    assert!(report.not_in_vault.is_empty(), "{upn} is not in the vault");
}

/// A call-back verification as the default policy wants it.
pub fn call_back(evidence: &str) -> serde_json::Value {
    serde_json::json!([{"method": "call-back", "confirmed": [true, true], "evidence": evidence}])
}

/// Evidence the default policy accepts.
pub const EVIDENCE: &str = "called the mobile on file, Bob answered and confirmed the ticket";

impl Fixture {
    /// The same vault served with other settings (the console stays unsealed).
    pub fn with_settings(mut self, settings: Settings) -> Fixture {
        let state = Arc::new(AppState::new(self.path.clone(), settings));
        if let Some(key) = self.state.console_key() {
            state.unseal(key);
        }
        self.state = state;
        self
    }
}

/// Seconds in the mean Gregorian year the drift rates are counted in.
pub const YEAR: u64 = 31_556_952;

/// A token of a simulated fleet: its clock is `initial_s + rate·t` seconds
/// off (t in years since the first sighting), plus jitter.
pub struct Drifting {
    pub serial: &'static str,
    pub user: &'static str,
    pub rate_s_per_year: f64,
    pub initial_s: f64,
}

/// The seed of a simulated token (its serial's digits, repeated).
pub fn drifting_seed(serial: &str) -> Vec<u8> {
    serial.bytes().cycle().take(20).collect()
}

/// Issue 18, item 1: a simulated fleet with known drift rates. Each token
/// is shipped to its user, then checked (`token check`, as the desk does
/// when a user reads a code) `sightings` times at moments spread over
/// `[from, until]`, showing the code of its drifting clock with ±3 s of
/// jitter. A fixed generator (xorshift), so a failure repeats.
pub fn simulate_fleet(
    fixture: &Fixture,
    fleet: &[Drifting],
    sightings: u64,
    from: u64,
    until: u64,
) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for token in fleet {
        ship_token(
            fixture,
            token.serial,
            token.user,
            &drifting_seed(token.serial),
        );
    }
    let mut admin = admin_session(fixture);
    for token in fleet {
        let seed = drifting_seed(token.serial);
        let mut times: Vec<u64> = (0..sightings)
            .map(|_| from + (next() * (until - from) as f64) as u64)
            .collect();
        times.sort_unstable();
        for at in times {
            let years = (at - from) as f64 / YEAR as f64;
            let jitter = (next() * 2.0 - 1.0) * 3.0;
            let offset = token.initial_s + token.rate_s_per_year * years + jitter;
            let shown = (at as f64 + offset).floor() as u64;
            let code = totp(&seed).generate_at(shown).unwrap().to_string();
            admin
                .check_token(&token.serial.parse().unwrap(), &code, at)
                .unwrap_or_else(|e| panic!("{} at {at}: {e}", token.serial));
        }
    }
}

/// Adds a classic Token2 token in stock that entered the vault at
/// `entered` (its battery is counted from then).
pub fn add_stock_token(fixture: &Fixture, serial: &str, entered: u64) {
    use oathdesk_otp::{Credential, Secret};
    use oathdesk_vault::NewToken;
    use oathdesk_vault::model::{DeviceKind, State};
    admin_session(fixture)
        .add_token(
            NewToken {
                serial: Some(serial.into()),
                slot: None,
                device_kind: DeviceKind::Classic,
                manufacturer: Some("Token2".into()),
                model: Some("C202".into()),
                device_slots: 1,
                credential: Credential::totp(Secret::from_bytes(drifting_seed(serial))),
                label: None,
                user: None,
                state: State::Stock,
            },
            entered,
        )
        .unwrap();
}

//! Starting the console: the vault (created on first start), the listener,
//! the announcement, and serving until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use oathdesk_otp::{Credential, seed};
use oathdesk_vault::crypto::VaultKey;
use oathdesk_vault::location::Location;
use oathdesk_vault::model::{DeviceKind, State, TokenRef};
use oathdesk_vault::web::SETUP_OPERATOR;
use oathdesk_vault::{NewToken, Unlock, Vault};

use crate::state::{AppState, Settings, now};
use crate::tls::Tls;
use crate::{FirstRun, SETUP_KDF, prepare, router};

/// What `oathdesk serve` asks for.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The vault: a SQLite file or a PostgreSQL database.
    pub vault: Location,
    pub listen: SocketAddr,
    pub settings: Settings,
    /// A throw-away vault in a temporary folder, filled with sample tokens.
    pub demo: bool,
    /// HTTPS with this certificate.
    pub tls: Option<Tls>,
    /// Also append each new audit head to this file (it is always logged).
    pub audit_head_file: Option<std::path::PathBuf>,
    /// Every committed audit entry also goes to these SIEM sinks.
    pub audit_sinks: Vec<oathdesk_auditsink::SinkSpec>,
    /// Unseal at start with the age identity of an admin operator in this file.
    pub unseal_key_file: Option<std::path::PathBuf>,
    /// How the log on standard error is written.
    pub log_format: LogFormat,
}

/// How the console writes its log (standard error).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for people: time, level, message, `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line, the event's fields as top-level keys
    /// (`"audit_head"`, `"action"`, …), for a log shipper or SIEM that
    /// would otherwise have to parse the text.
    Json,
}

/// What the console tells the person who started it.
#[derive(Debug)]
pub struct Started {
    /// `http://127.0.0.1:8080`
    pub url: String,
    pub vault: Location,
    pub first_run: FirstRun,
    pub demo: bool,
    /// SHA-256 of the TLS certificate, with TLS.
    pub fingerprint: Option<String>,
}

impl Started {
    /// The lines to print.
    pub fn announcement(&self) -> String {
        let mut text = format!("oathdesk console on {}\nvault: {}\n", self.url, self.vault);
        if let Some(fingerprint) = &self.fingerprint {
            text.push_str(&format!("TLS certificate SHA-256: {fingerprint}\n"));
        }
        if self.demo {
            text.push_str(
                "demo: a throw-away vault with sample tokens, deleted when the server stops\n",
            );
        }
        match &self.first_run {
            FirstRun::Ready => text.push_str("sign in at the address above\n"),
            FirstRun::Created { setup_code } => text.push_str(&format!(
                "first start: create the first admin at\n\n    {}/setup#code={setup_code}\n\n\
                 (the link works once; the code is in the part after '#', which browsers never send to a server)\n",
                self.url
            )),
            FirstRun::NeedsAdmin => text.push_str(&format!(
                "this vault has no web account yet: open {}/setup and sign in as one of its operators\n",
                self.url
            )),
            FirstRun::AwaitingSetup => text.push_str(&format!(
                "this vault waits for its first admin: open the setup link printed when it was \
                 created (by this or another server on the same database; the code works on every \
                 one), or {}/setup with its code\n",
                self.url
            )),
        }
        text
    }
}

/// The vault key, opened with the age identity in `path` (an admin
/// operator's slot); the unsealing is audited.
fn unseal_with_file(vault: &Location, path: &std::path::Path) -> Result<VaultKey, String> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("--unseal-key-file {}: {e}", path.display()))?,
    );
    let mut session = Vault::open_at(vault)
        .and_then(|v| v.unlock_by_identity(&text))
        .map_err(|e| format!("--unseal-key-file {}: {e}", path.display()))?;
    session
        .unseal_key("key file", now())
        .map_err(|e| format!("--unseal-key-file {}: {e}", path.display()))
}

/// Runs the console until Ctrl-C (or SIGTERM).
pub fn run(launch: Launch, announce: impl FnOnce(&Started)) -> Result<(), String> {
    init_log(launch.log_format);
    // The audit log's head leaves the database with every entry: one
    // structured log line (for the log shipper and the SIEM), and a file
    // if asked. Cutting the newest entries off is then caught by
    // 'oathdesk audit verify --expect-head'.
    let head_file = launch.audit_head_file.clone();
    oathdesk_vault::audit::set_head_sink(move |head| {
        tracing::info!(audit_head = %head.head(), action = %head.action, at = head.at, "audit head");
        if let Some(path) = &head_file
            && let Err(error) = oathdesk_vault::audit::append_head_line(path, head)
        {
            tracing::error!(file = %path.display(), %error, "cannot append the audit head");
        }
    });
    // Every entry to the SIEM sinks, queued off the request threads.
    let shipper = (!launch.audit_sinks.is_empty()).then(|| {
        oathdesk_auditsink::Shipper::install(launch.audit_sinks.clone(), |report| match report {
            oathdesk_auditsink::Report::Back { .. } => tracing::info!("{report}"),
            _ => tracing::warn!("{report}"),
        })
    });
    let demo_dir = launch.demo.then(demo_folder).transpose()?;
    let vault = match &demo_dir {
        Some(dir) => Location::Sqlite(dir.join("vault.db")),
        None => launch.vault.clone(),
    };
    let outcome = (|| {
        let first_run = prepare(&vault, SETUP_KDF, now())?;
        if let (true, FirstRun::Created { setup_code }) = (launch.demo, &first_run) {
            fill_demo(&vault, setup_code)?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let tls = launch.tls.as_ref().map(crate::tls::prepare).transpose()?;
        let mut settings = launch.settings.clone();
        settings.secure_cookies = tls.is_some();
        runtime.block_on(async {
            let listener = std::net::TcpListener::bind(launch.listen)
                .map_err(|e| format!("cannot listen on {}: {e}", launch.listen))?;
            let address = listener.local_addr().map_err(|e| e.to_string())?;
            let state = Arc::new(AppState::new(vault.clone(), settings));
            if let Some(path) = &launch.unseal_key_file {
                state.unseal(unseal_with_file(&vault, path)?);
                tracing::info!(file = %path.display(), "console unsealed with the key file");
            }
            tokio::spawn(sweep_expired_grants(state.clone()));
            let scheme = if tls.is_some() { "https" } else { "http" };
            announce(&Started {
                url: format!("{scheme}://{address}"),
                vault: vault.clone(),
                first_run,
                demo: launch.demo,
                fingerprint: tls.as_ref().map(|t| t.fingerprint.clone()),
            });
            // Time-outs for headers and bodies and a cap per address:
            // slow or hostile clients cannot hold connections forever.
            let limits = state.settings.connections;
            listener.set_nonblocking(true).map_err(|e| e.to_string())?;
            let listener =
                tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
            crate::listen::serve(
                listener,
                router(state),
                tls.map(|prepared| prepared.config),
                limits,
                shutdown_signal(),
            )
            .await
            .map_err(|e| format!("server: {e}"))
        })
    })();
    if let Some(dir) = demo_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    // On the way out, the queued entries get a few seconds to leave.
    if let Some(shipper) = shipper {
        for missing in shipper.flush(std::time::Duration::from_secs(5)) {
            tracing::warn!(
                "audit entries from {} on did not reach {}; they are in the vault: send them with \
                 'oathdesk audit ship --to {} --from {}'",
                missing.from,
                missing.sink,
                missing.sink,
                missing.from
            );
        }
    }
    outcome
}

/// Sends the log to standard error in `format`. A second call (tests that
/// start several consoles in one process) keeps the first set-up.
fn init_log(format: LogFormat) {
    let log = tracing_subscriber::fmt()
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log shipper reads plain fields.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => log.try_init(),
        // Fields at the top level of each object, not under "fields":
        // `jq .audit_head` rather than `jq .fields.audit_head`.
        LogFormat::Json => log.json().flatten_event(true).try_init(),
    };
}

/// Deletes ended sessions and tokens every hour (an ended grant opens
/// nothing anyway; this keeps the table small).
async fn sweep_expired_grants(state: Arc<AppState>) {
    let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        let worker = state.clone();
        let swept = crate::state::blocking(move || {
            let mut vault = worker.vault()?;
            let count = vault.end_expired_grants(now())?;
            worker.recycle(vault.into_store());
            Ok(count)
        })
        .await;
        match swept {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "ended sessions and tokens deleted"),
            Err(error) => tracing::warn!(error = %error.message, "sweeping ended sessions failed"),
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("stopping");
}

fn demo_folder() -> Result<PathBuf, String> {
    let mut bytes = [0u8; 6];
    oathdesk_vault::crypto::random(&mut bytes).map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!(
        "oathdesk-demo-{}",
        data_encoding::HEXLOWER.encode(&bytes)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Sample users and tokens for the demo, added before the first admin
/// exists (with the setup code, which opens the vault until then).
pub fn fill_demo(vault: &Location, setup_code: &str) -> Result<(), String> {
    let mut session = Vault::open_at(vault)
        .and_then(|v| v.unlock(SETUP_OPERATOR, Unlock::Passphrase(setup_code.as_bytes())))
        .map_err(|e| e.to_string())?;
    let at = now();
    let token =
        |serial: &str, slot: Option<u32>, kind: DeviceKind, model: &str, user: Option<&str>| {
            let secret = seed::generate(20).map_err(|e| e.to_string())?;
            Ok::<NewToken, String>(NewToken {
                serial: Some(serial.to_owned()),
                slot,
                device_kind: kind,
                manufacturer: Some("Token2".into()),
                model: Some(model.into()),
                device_slots: if kind == DeviceKind::MultiProfile {
                    100
                } else {
                    1
                },
                credential: Credential::totp(secret),
                label: None,
                user: user.map(str::to_owned),
                state: if kind == DeviceKind::Classic {
                    State::Stock
                } else {
                    State::Burned
                },
            })
        };
    let tokens = vec![
        token(
            "2100123456",
            None,
            DeviceKind::Classic,
            "C202",
            Some("bob@contoso.com"),
        )?,
        token(
            "2100123457",
            None,
            DeviceKind::Classic,
            "C202",
            Some("dana@contoso.com"),
        )?,
        token("2100123458", None, DeviceKind::Classic, "C202", None)?,
        token(
            "M2-00071",
            Some(0),
            DeviceKind::MultiProfile,
            "Molto-2",
            Some("alice@contoso.com"),
        )?,
        token(
            "M2-00071",
            Some(1),
            DeviceKind::MultiProfile,
            "Molto-2",
            Some("carol@contoso.com"),
        )?,
        token(
            "NFC-4410",
            None,
            DeviceKind::SingleProfile,
            "miniOTP-3",
            None,
        )?,
    ];
    session
        .add_tokens(tokens, at, "demo.fill")
        .map_err(|e| e.to_string())?;
    // Data on file, so that the helpdesk's verification methods can be tried
    // (the number to call back, the manager, the badge's employee id).
    let on_file = |upn: &str, mobile: &str, manager: &str, id: &str| oathdesk_vault::FactsUpdate {
        upn: upn.to_owned(),
        display_name: None,
        values: [
            ("mobile_phone", mobile),
            ("manager", manager),
            ("employee_id", id),
            ("department", "Sales"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), Some(value.to_owned())))
        .collect(),
    };
    session
        .update_user_facts(
            vec![
                on_file(
                    "alice@contoso.com",
                    "+44 7700 900101",
                    "dana@contoso.com",
                    "E1001",
                ),
                on_file(
                    "bob@contoso.com",
                    "+44 7700 900102",
                    "dana@contoso.com",
                    "E1002",
                ),
                on_file(
                    "carol@contoso.com",
                    "+44 7700 900103",
                    "dana@contoso.com",
                    "E1003",
                ),
                on_file(
                    "dana@contoso.com",
                    "+44 7700 900104",
                    "alice@contoso.com",
                    "E1004",
                ),
            ],
            "demo",
            false,
            at,
        )
        .map_err(|e| e.to_string())?;
    for (serial, note) in [
        ("2100123456", "DHL 00340434161094042557"),
        ("2100123457", "internal mail"),
    ] {
        let reference = TokenRef::Serial {
            serial: serial.into(),
            slot: None,
        };
        session
            .transition(&reference, State::Shipped, Some(note), at)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

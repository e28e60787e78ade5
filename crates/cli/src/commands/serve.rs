//! `oathdesk serve`: the web console and REST API (crate `oathdesk-server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow, bail};
use clap::Args;
use oathdesk_server::Settings;
use oathdesk_server::launch::{Launch, LogFormat, run as launch};
use oathdesk_server::outbound::{IssuedPass, OutboundHook};
use oathdesk_server::proxy::TrustedProxy;
use oathdesk_server::tls::Tls;
use oathdesk_vault::crypto::KdfParams;
use oathdesk_vault::location::Location;
use oathdesk_vault::{Session, TapPermit};

use crate::unlock::VaultOptions;

/// Serve the web console (toolset, helpdesk, inventory, audit, operators)
/// and the REST API under /api/v1.
#[derive(Args, Debug)]
#[command(after_help = "\
On first start with no vault, the vault is created and a one-time setup link for the first \
admin is printed. A vault made with 'oathdesk vault init' gets its first admin when one of its \
operators signs in at /setup.

Examples:
  oathdesk serve                          # http://127.0.0.1:8080, the default vault
  oathdesk serve --demo                   # a throw-away vault with sample tokens
  oathdesk serve --listen 0.0.0.0:8443 --tls-self-signed")]
pub struct ServeArgs {
    /// Read settings from this TOML file (keys: the long flags below, plus 'vault' or
    /// 'database'); flags and environment variables override it.
    #[arg(long, value_name = "FILE", env = crate::config::CONFIG_ENV)]
    pub config: Option<PathBuf>,
    /// How the log on standard error is written: 'text' for people, 'json' (one object
    /// per line) for a log shipper.
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        env = "OATHDESK_LOG_FORMAT",
        default_value_t = LogFormatArg::Text
    )]
    pub log_format: LogFormatArg,
    /// Address and port to listen on (loopback by default).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// A throw-away vault in a temporary folder with sample users and tokens.
    #[arg(long)]
    pub demo: bool,
    /// Minutes without a request after which a browser session ends.
    #[arg(long, value_name = "MINUTES", default_value_t = 30)]
    pub session_idle: u64,
    /// Hours after which a browser session ends however busy.
    #[arg(long, value_name = "HOURS", default_value_t = 12)]
    pub session_hours: u64,
    /// HTTPS with this certificate (PEM, leaf first).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// HTTPS with a self-signed certificate made at start (its key stays in memory);
    /// the printed SHA-256 fingerprint lets browsers' users check it.
    #[arg(long)]
    pub tls_self_signed: bool,
    /// A name or address the self-signed certificate is for (repeatable; localhost,
    /// 127.0.0.1 and the --listen address are always in it).
    #[arg(long, value_name = "NAME", requires = "tls_self_signed")]
    pub tls_name: Vec<String>,
    /// Argon2id memory for passwords the console sets, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub kdf_memory_mib: u32,
    /// A load balancer or reverse proxy (address or network, e.g. 10.0.0.0/8) whose
    /// X-Forwarded-For names the client, for the per-address sign-in throttle (repeatable).
    #[arg(long, value_name = "ADDR[/BITS]")]
    pub trusted_proxy: Vec<TrustedProxy>,
    /// Seconds a client may take to send a request's headers (and the TLS
    /// handshake); slower connections are closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds a client may leave a request's body waiting for its next part;
    /// slower connections are closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub body_timeout: u64,
    /// Connections one client address may hold open at once (0: no cap; behind
    /// a load balancer every connection comes from the balancer's address).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_connections_per_address: usize,
    /// Append the audit log's head to FILE after every entry (it is always
    /// logged too).
    #[arg(long, value_name = "FILE", env = "OATHDESK_AUDIT_HEAD_FILE")]
    pub audit_head_file: Option<PathBuf>,
    /// Unseal at start with the age identity in FILE (an admin operator's, made with
    /// 'oathdesk operator add console --role admin --new-identity-file FILE'), for
    /// unattended restarts. Whoever reads FILE opens the vault: keep it to the service
    /// (a systemd credential).
    #[arg(long, value_name = "FILE", env = "OATHDESK_UNSEAL_KEY_FILE")]
    pub unseal_key_file: Option<PathBuf>,
    /// Sign user notices sent by webhook with the secret in FILE [else env
    /// OATHDESK_WEBHOOK_SECRET]; the console then sends each notice as it is queued.
    #[arg(long, value_name = "FILE")]
    pub notify_secret_file: Option<PathBuf>,
    /// Entra, for Temporary Access Passes from the helpdesk page and notices by mail
    /// (the app's credential as for 'oathdesk entra'; the console signs in as the app).
    #[command(
        flatten,
        next_help_heading = "Entra (passes and mail from the console)"
    )]
    pub entra: crate::commands::entra::EntraOptions,
    /// Send every audit entry, as it is committed, to SPEC (repeatable, or
    /// comma-separated in the variable): file:PATH, stdout, syslog+udp://HOST:PORT,
    /// syslog+tcp://HOST:PORT, syslog+unix:///dev/log. Fields in docs/siem.md.
    #[arg(
        long,
        value_name = "SPEC",
        env = "OATHDESK_AUDIT_SINK",
        value_delimiter = ','
    )]
    pub audit_sink: Vec<oathdesk_auditsink::SinkSpec>,
    /// An address or network (e.g. 10.0.0.5 or 10.0.0.0/8) that may read GET /metrics
    /// without an API token, for a Prometheus server (repeatable). The client address
    /// is the one --trusted-proxy finds. Otherwise /metrics needs a token with scope
    /// metrics.
    #[arg(long, value_name = "ADDR[/BITS]")]
    pub metrics_from: Vec<TrustedProxy>,
    #[command(
        flatten,
        next_help_heading = "Sign-in through the organisation (OpenID Connect)"
    )]
    pub oidc: crate::commands::oidc::OidcServeOptions,
}

/// `--log-format`: the command line's name for the server's [`LogFormat`].
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormatArg {
    /// Lines for people (coloured only on a terminal).
    Text,
    /// One JSON object per line, the event's fields as its keys.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(format: LogFormatArg) -> LogFormat {
        match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// The console's calls to Entra and the notice channels: the same code as
/// `oathdesk helpdesk tap` and `oathdesk notify send`.
struct Outbound {
    entra: crate::commands::entra::EntraOptions,
    notify_secret_file: Option<PathBuf>,
    /// One sender at a time: two releases in quick succession must not
    /// both send the same queued notice.
    sending: Mutex<()>,
}

impl oathdesk_server::outbound::Outbound for Outbound {
    fn tap_connected(&self) -> bool {
        self.entra.app_configured()
    }

    fn issue_tap(&self, permit: &TapPermit) -> std::result::Result<IssuedPass, String> {
        match crate::commands::entra::issue_tap(&self.entra, permit) {
            Ok(Ok(pass)) => Ok(IssuedPass {
                method_id: pass.id,
                temporary_access_pass: pass.pass,
                lifetime_minutes: pass.lifetime_in_minutes,
                usable_once: pass.is_usable_once,
                start: pass.start_date_time,
            }),
            Ok(Err(refused)) => Err(crate::commands::entra::tap_refusal(&refused)),
            Err(ours) => Err(format!("{ours:#}")),
        }
    }

    fn send_notices(&self, session: &mut Session) -> std::result::Result<(u64, u64), String> {
        let _turn = self.sending.lock().unwrap_or_else(|p| p.into_inner());
        let channel = session
            .helpdesk_policy()
            .map_err(|e| e.to_string())?
            .notify
            .channel;
        if channel.is_none() {
            return Ok((0, 0));
        }
        crate::commands::notify::send_by_policy(
            session,
            self.notify_secret_file.as_deref(),
            &self.entra,
        )
        .map_err(|e| format!("{e:#}"))
    }
}

pub fn run(args: ServeArgs, vault: &VaultOptions) -> Result<()> {
    let listen: SocketAddr = args.listen.parse().map_err(|_| {
        anyhow!(
            "--listen: '{}' is not an address like 127.0.0.1:8080",
            args.listen
        )
    })?;
    if args.session_idle == 0 || args.session_hours == 0 {
        bail!("--session-idle and --session-hours must be at least 1");
    }
    if args.header_timeout == 0 || args.body_timeout == 0 {
        bail!("--header-timeout and --body-timeout must be at least 1 second");
    }
    let kdf = KdfParams {
        memory_kib: args.kdf_memory_mib.saturating_mul(1024),
        ..KdfParams::DEFAULT
    };
    kdf.check_minimum()
        .map_err(|e| anyhow!("--kdf-memory-mib: {e}"))?;
    let oidc = args.oidc.client()?;
    let settings = Settings {
        oidc,
        kdf,
        session_idle: args.session_idle * 60,
        session_lifetime: args.session_hours * 3600,
        trusted_proxies: args.trusted_proxy,
        metrics_from: args.metrics_from,
        connections: oathdesk_server::listen::ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(args.header_timeout),
            body_read_timeout: std::time::Duration::from_secs(args.body_timeout),
            per_address: args.max_connections_per_address,
        },
        outbound: OutboundHook(Some(Arc::new(Outbound {
            entra: args.entra,
            notify_secret_file: args.notify_secret_file,
            sending: Mutex::new(()),
        }))),
        ..Settings::default()
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Tls::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ if args.tls_self_signed => {
            let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            if !listen.ip().is_unspecified() {
                names.push(listen.ip().to_string());
            }
            for name in &args.tls_name {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            Some(Tls::SelfSigned { names })
        }
        _ => None,
    };
    let launch_options = Launch {
        // The demo makes its own vault in a temporary folder.
        vault: if args.demo {
            Location::Sqlite(Default::default())
        } else {
            vault.location()?
        },
        listen,
        settings,
        demo: args.demo,
        tls,
        audit_head_file: args.audit_head_file,
        audit_sinks: args.audit_sink,
        unseal_key_file: args.unseal_key_file,
        log_format: args.log_format.into(),
    };
    launch(launch_options, |started| {
        println!("{}", started.announcement());
    })
    .map_err(|e| anyhow!("{e}"))
}

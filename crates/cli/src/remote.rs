//! The command line through a console: `oathdesk --server URL …`.
//!
//! Helpdesk and auditor operators hold no key of the vault (threat model,
//! promise 2): they work through a console that an admin unsealed, in a
//! browser or from here, with an API token from the console's Account page.
//! The commands they need answer as the local ones do — same output, same
//! JSON, same exit codes — because they print with the same functions and
//! map the console's typed refusals (`kind`) to the same exit codes.
//!
//! The token comes from OATHDESK_TOKEN or `--token-file`, never from argv;
//! TLS is verified (Mozilla's roots, or `--ca FILE` for a private CA).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use oathdesk_vault::model::Event;
use oathdesk_vault::verification::Policy;
use oathdesk_vault::{
    Approval, HelpdeskGrant, HelpdeskRequest, IdentifyHit, TokenInfo, VerificationView,
};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::commands::helpdesk::{self, Desk, IdentifyArgs, Released};
use crate::commands::token::{self, TokenCommand};
use crate::commands::vault::AuditCommand;
use crate::input;

/// Where the console is and how to reach it.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Through a console")]
pub struct RemoteOptions {
    // The help is an attribute, not a doc comment: rustdoc reads the URL as a bare link.
    #[arg(
        long,
        value_name = "URL",
        global = true,
        help = "Work through the console at URL (https://desk.example:8443) instead of opening \
                the vault: for helpdesk and auditor operators, who hold no key [env: OATHDESK_SERVER]"
    )]
    pub server: Option<String>,
    /// Read the API token from FILE (else OATHDESK_TOKEN) — never give it as an argument.
    #[arg(long, value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// Trust this CA (PEM) for the console's certificate, for a private CA [env: OATHDESK_CA].
    #[arg(long, value_name = "FILE", global = true)]
    pub ca: Option<PathBuf>,
}

/// An error answer of the console, with its typed kind.
#[derive(Debug)]
pub struct RemoteError {
    pub message: String,
    pub kind: Option<String>,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}

impl RemoteError {
    /// The exit code a local command would give for the same refusal.
    pub fn exit_code(&self) -> ExitCode {
        match self.kind.as_deref() {
            Some("altered" | "code_released" | "code_mismatch") => ExitCode::from(2),
            Some("approval_required") => ExitCode::from(helpdesk::EXIT_WAITING),
            _ => ExitCode::from(1),
        }
    }
}

/// A console to talk to.
pub struct Console {
    base: String,
    token: Zeroizing<String>,
    agent: ureq::Agent,
}

impl Console {
    /// The console's address, as named with --server.
    pub fn base(&self) -> &str {
        &self.base
    }
}

impl RemoteOptions {
    /// The console, if one was named (`--server` or OATHDESK_SERVER).
    pub fn console(&self) -> Result<Option<Console>> {
        let server = self
            .server
            .clone()
            .or_else(|| std::env::var("OATHDESK_SERVER").ok())
            .filter(|s| !s.trim().is_empty());
        let Some(server) = server else {
            return Ok(None);
        };
        let base = server.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            bail!("--server: '{base}' is not a URL like https://desk.example:8443");
        }
        // The API token would cross the network in clear text.
        if let Some(rest) = base.strip_prefix("http://") {
            let host = rest.split('/').next().unwrap_or_default();
            let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
            if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
                bail!(
                    "--server: {base} is plain HTTP: the API token would cross the network in clear \
                     text; use https:// (oathdesk serve --tls-self-signed, with --ca here for its \
                     certificate)"
                );
            }
        }
        let token = match &self.token_file {
            Some(path) => Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("--token-file: cannot read {}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            ),
            None => Zeroizing::new(
                std::env::var("OATHDESK_TOKEN")
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            ),
        };
        if token.is_empty() {
            bail!(
                "--server needs an API token: create one on the console's Account page and put it \
                 in OATHDESK_TOKEN or a file named by --token-file"
            );
        }
        let ca = self
            .ca
            .clone()
            .or_else(|| std::env::var_os("OATHDESK_CA").map(PathBuf::from));
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &ca {
            let pem = std::fs::read(path)
                .with_context(|| format!("--ca: cannot read {}", path.display()))?;
            let certificates: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certificates.is_empty() {
                bail!("--ca: {} holds no PEM certificate", path.display());
            }
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certificates)));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(60)))
            .build()
            .new_agent();
        Ok(Some(Console { base, token, agent }))
    }
}

impl Console {
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.send_query(method, path, &[], body)
    }

    /// Sends a request; `query` pairs are encoded by the HTTP client.
    fn send_query(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let authorization = format!("Bearer {}", self.token.as_str());
        let response = match (method, body) {
            ("GET", _) => self
                .agent
                .get(&url)
                .query_pairs(query.iter().copied())
                .header("Authorization", &authorization)
                .call(),
            ("PUT", body) => self
                .agent
                .put(&url)
                .header("Authorization", &authorization)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(Value::Null).to_string()),
            (_, body) => self
                .agent
                .post(&url)
                .header("Authorization", &authorization)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(Value::Null).to_string()),
        };
        let mut response =
            response.map_err(|e| anyhow!("cannot reach the console at {}: {e}", self.base))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| anyhow!("the console's answer could not be read: {e}"))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status >= 400 {
            let message = value["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("the console answered {status}"));
            return Err(RemoteError {
                message,
                kind: value["kind"].as_str().map(str::to_owned),
            }
            .into());
        }
        Ok(value)
    }
}

/// Runs a command through the console; the commands that need a key of
/// the vault (or a device at this desk) say so.
pub fn run(command: crate::Command, console: &Console) -> Result<ExitCode> {
    use crate::Command;
    match command {
        Command::Helpdesk(command) => {
            let mut desk = console;
            return helpdesk::run_at(command, &mut desk);
        }
        Command::Identify(args) => identify(args, console)?,
        Command::Token(TokenCommand::Deliver { token, code, json }) => {
            let path = format!("/api/v1/tokens/{}/deliver", encode_part(&token.to_string()));
            let answer = console.send("POST", &path, Some(json!({"code": code})))?;
            let delivery: oathdesk_vault::Delivery = serde_json::from_value(answer)?;
            token::print_delivery(&delivery, json)?;
        }
        Command::Token(TokenCommand::DeliveryLink(args)) => {
            if args.send_mail {
                bail!(
                    "--send-mail works on the vault itself; through a console, read the link out"
                );
            }
            let path = format!(
                "/api/v1/tokens/{}/delivery-link",
                encode_part(&args.token.to_string())
            );
            let answer = console.send("POST", &path, None)?;
            let text = |key: &str| answer[key].as_str().unwrap_or_default().to_owned();
            let link = oathdesk_vault::DeliveryLink {
                secret: text("path").trim_start_matches("/d/").to_owned(),
                handle: text("handle"),
                credential: text("credential"),
                user: text("user"),
                first_name: answer["first_name"].as_str().map(str::to_owned),
                expires_at: answer["expires_at"].as_u64().unwrap_or_default(),
            };
            let base = args
                .base_url
                .clone()
                .unwrap_or_else(|| console.base().to_owned());
            crate::commands::selfservice::hand_over(
                None,
                &link,
                &base,
                &args,
                crate::input::now(),
            )?;
        }
        Command::Token(TokenCommand::List(args)) => {
            let state = args.state.map(|s| s.name());
            let query: Vec<(&str, &str)> = [
                Some(("limit", "5000")),
                args.user.as_deref().map(|u| ("user", u)),
                state.map(|s| ("state", s)),
                args.serial.as_deref().map(|s| ("serial", s)),
                args.held.then_some(("custody", "held")),
            ]
            .into_iter()
            .flatten()
            .collect();
            let answer = console.send_query("GET", "/api/v1/tokens", &query, None)?;
            let tokens: Vec<TokenInfo> = serde_json::from_value(answer["tokens"].clone())?;
            if args.json {
                println!("{}", serde_json::to_string(&tokens)?);
            } else {
                token::print_tokens(&tokens);
            }
        }
        Command::Token(TokenCommand::Show { token, json }) => {
            let path = format!("/api/v1/tokens/{}", encode_part(&token.to_string()));
            let answer = console.send("GET", &path, None)?;
            let info: TokenInfo = serde_json::from_value(answer["token"].clone())?;
            let history: Vec<Event> = serde_json::from_value(answer["events"].clone())?;
            token::print_token(info, history, None, None, json);
        }
        Command::Vault(crate::commands::vault::VaultCommand::Verify { json }) => {
            let report = console.send("GET", "/api/v1/vault/verify", None)?;
            return Ok(crate::commands::vault::print_vault_report(&report, json));
        }
        Command::Audit(AuditCommand::Verify { expect_head, json }) => {
            let head = expect_head
                .map(|head| crate::commands::vault::read_expected_head(&head))
                .transpose()?
                .map(|(seq, hash)| format!("{seq}:{hash}"));
            let query: Vec<(&str, &str)> =
                head.iter().map(|h| ("expect_head", h.as_str())).collect();
            let answer = console.send_query("GET", "/api/v1/audit/verify", &query, None)?;
            let intact = answer["intact"].as_bool().unwrap_or(false);
            if json {
                println!("{answer}");
            } else if intact {
                println!(
                    "audit log intact: {} entries, head {}",
                    answer["entries"],
                    answer["head"].as_str().unwrap_or("-")
                );
            } else {
                eprintln!(
                    "oathdesk: {}",
                    answer["problem"]
                        .as_str()
                        .unwrap_or("the audit log is not intact")
                );
            }
            return Ok(if intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        _ => bail!(
            "this command works on the vault itself, not through --server: helpdesk (code, \
             steps, policy, approvals, approve, deny, collect), identify, token list, token show, token deliver, audit verify and vault verify do"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn identify(args: IdentifyArgs, console: &Console) -> Result<()> {
    let at = args.at.as_deref().map(input::parse_time).transpose()?;
    let mut codes = vec![args.code.as_str()];
    codes.extend(args.next_code.as_deref());
    let answer = console.send(
        "POST",
        "/api/v1/identify",
        Some(json!({"codes": codes, "at": at, "window": args.window})),
    )?;
    let hits: Vec<IdentifyHit> = serde_json::from_value(answer)?;
    helpdesk::print_hits(&hits, &codes, args.window, args.json)
}

/// A path segment (a token reference such as `#12`), percent-encoded.
fn encode_part(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The helpdesk through a console: the same requests as the console's page.
impl Desk for &Console {
    fn policy(&mut self) -> Result<Policy> {
        Ok(serde_json::from_value(self.send(
            "GET",
            "/api/v1/helpdesk/policy",
            None,
        )?)?)
    }
    fn set_policy(&mut self, policy: &Policy) -> Result<()> {
        self.send(
            "PUT",
            "/api/v1/helpdesk/policy",
            Some(serde_json::to_value(policy)?),
        )?;
        Ok(())
    }
    fn steps(&mut self, user: &str, method: &str) -> Result<VerificationView> {
        let answer = self.send_query(
            "GET",
            "/api/v1/helpdesk/verification",
            &[("user", user), ("method", method)],
            None,
        )?;
        Ok(serde_json::from_value(answer)?)
    }
    fn reveal(&mut self, user: &str, method: &str, name: &str) -> Result<String> {
        let answer = self.send(
            "POST",
            "/api/v1/helpdesk/reveal",
            Some(json!({"user": user, "method": method, "name": name})),
        )?;
        Ok(answer["value"].as_str().unwrap_or_default().to_owned())
    }
    fn code(&mut self, request: &HelpdeskRequest) -> Result<Released> {
        let answer = self.send(
            "POST",
            "/api/v1/helpdesk/code",
            Some(json!({
                "user": request.user,
                "verifications": request.verifications,
                "ticket": request.ticket,
                "serial": request.token.as_ref().map(ToString::to_string),
                "valid_for": request.valid_for,
                "verifier": request.verifier.to_string(),
            })),
        )?;
        if answer["kind"] == "approval_required" {
            return Ok(Released::Waiting {
                id: answer["id"].as_str().unwrap_or_default().to_owned(),
                message: answer["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(Released::Code(serde_json::from_value(answer)?))
    }
    fn approvals(&mut self, state: Option<&str>) -> Result<Vec<Approval>> {
        let query: Vec<(&str, &str)> = state.map(|s| ("state", s)).into_iter().collect();
        let answer = self.send_query("GET", "/api/v1/helpdesk/approvals", &query, None)?;
        let list = if answer.is_array() {
            answer
        } else {
            answer["approvals"].clone()
        };
        Ok(serde_json::from_value(list)?)
    }
    fn decide(&mut self, id: &str, approve: bool, note: Option<&str>) -> Result<Approval> {
        let verb = if approve { "approve" } else { "deny" };
        let path = format!("/api/v1/helpdesk/approvals/{}/{verb}", encode_part(id));
        Ok(serde_json::from_value(self.send(
            "POST",
            &path,
            Some(json!({"note": note})),
        )?)?)
    }
    fn collect(&mut self, id: &str) -> Result<HelpdeskGrant> {
        let path = format!("/api/v1/helpdesk/approvals/{}/collect", encode_part(id));
        Ok(serde_json::from_value(self.send("POST", &path, None)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consoles_kinds_give_the_local_exit_codes() {
        let code = |kind: Option<&str>| {
            RemoteError {
                message: String::new(),
                kind: kind.map(str::to_owned),
            }
            .exit_code()
        };
        // A delivery code that did not verify: 2, like the local command.
        assert_eq!(code(Some("code_mismatch")), ExitCode::from(2));
        assert_eq!(code(Some("code_released")), ExitCode::from(2));
        assert_eq!(code(Some("refused")), ExitCode::from(1));
        assert_eq!(code(None), ExitCode::from(1));
    }
}

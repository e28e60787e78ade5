//! `oathdesk serve` as a process of the built binary, spoken to over HTTP:
//! the helpers the tests that run consoles share.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One `oathdesk serve` process, killed when dropped.
pub struct Server {
    pub name: &'static str,
    pub child: Child,
    pub url: String,
    lines: Arc<Mutex<Vec<String>>>,
    log: PathBuf,
}

/// Lines that end the announcement of a start.
pub const LAST_LINES: [&str; 4] = [
    "sign in at the address above",
    "(the link works once",
    "this vault has no web account yet",
    "this vault waits for its first admin",
];

impl Server {
    /// Starts `oathdesk serve` on a free loopback port; `vault` are the
    /// options that say where the vault is. Returns once it listens.
    pub fn start(name: &'static str, vault: &[String], dir: &Path) -> Server {
        Server::start_with(name, vault, dir, &[])
    }

    pub fn start_with(name: &'static str, vault: &[String], dir: &Path, extra: &[&str]) -> Server {
        let log = dir.join(format!("{name}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
            .args(vault)
            .args(["serve", "--listen", "127.0.0.1:0", "--kdf-memory-mib", "19"])
            .args(extra)
            .env_remove("OATHDESK_DATABASE_URL")
            .env_remove("OATHDESK_VAULT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start oathdesk serve");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut server = Server {
            name,
            child,
            url: String::new(),
            lines,
            log,
        };
        server.wait_for_announcement();
        server
    }

    pub fn wait_for_announcement(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let text = self.announcement();
            if LAST_LINES.iter().any(|last| text.contains(last)) {
                let url = text
                    .lines()
                    .find_map(|line| line.strip_prefix("oathdesk console on "))
                    .expect("the announcement names the address");
                self.url = url.trim().to_owned();
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "server {} ended ({status}) before it listened:\n{text}\n{}",
                    self.name,
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "server {} did not start:\n{text}\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What it printed on its standard output.
    pub fn announcement(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The setup code of the link it printed, if it created the vault.
    pub fn setup_code(&self) -> Option<String> {
        let text = self.announcement();
        let start = text.find("/setup#code=")? + "/setup#code=".len();
        Some(
            text[start..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Who is calling: a browser (session cookie and the page's CSRF token)
/// or a script (API token).
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub token: Option<String>,
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub set_cookie: Option<String>,
}

impl Answer {
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        // Loopback: never through a proxy from the environment.
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// Sends one request to `server` as `caller`.
pub fn send(
    server: &Server,
    caller: &Caller,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let agent = agent();
    let url = format!("{}{path}", server.url);
    macro_rules! with_headers {
        ($request:expr) => {{
            let mut request = $request.header("Accept", "application/json");
            if let Some(cookie) = &caller.cookie {
                request = request.header("Cookie", format!("oathdesk={cookie}"));
            }
            if let Some(csrf) = &caller.csrf {
                request = request.header("X-CSRF-Token", csrf.as_str());
            }
            if let Some(token) = &caller.token {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            request
        }};
    }
    macro_rules! with_body {
        ($request:expr) => {{
            let request = with_headers!($request);
            match &body {
                Some(value) => request
                    .content_type("application/json")
                    .send(serde_json::to_vec(value).unwrap()),
                None => request.send_empty(),
            }
        }};
    }
    let response = match method {
        "GET" => with_headers!(agent.get(&url)).call(),
        "DELETE" => with_headers!(agent.delete(&url)).call(),
        "POST" => with_body!(agent.post(&url)),
        "PUT" => with_body!(agent.put(&url)),
        "PATCH" => with_body!(agent.patch(&url)),
        other => panic!("method {other}"),
    };
    let mut response =
        response.unwrap_or_else(|e| panic!("{method} {path} on server {}: {e}", server.name));
    let status = response.status().as_u16();
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("oathdesk="))
        .and_then(|v| v.split(';').next())
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let text = response.body_mut().read_to_string().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        set_cookie,
    }
}

/// A signed-in browser from an answer that set the session cookie.
pub fn signed_in(answer: &Answer) -> Caller {
    assert_eq!(answer.status, 200, "{}", answer.body);
    Caller {
        cookie: Some(answer.set_cookie.clone().expect("a session cookie")),
        csrf: Some(answer.body["csrf"].as_str().unwrap().to_owned()),
        token: None,
    }
}

pub fn login(server: &Server, (name, password): (&str, &str)) -> Answer {
    send(
        server,
        &Caller::default(),
        "POST",
        "/api/v1/login",
        Some(json!({"name": name, "password": password})),
    )
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

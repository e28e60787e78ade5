//! The browser tests' kit: chromedriver and headless Chromium, waiting for
//! the page, signing in, screenshots, script errors and axe-core. Test
//! files that drive the browser include it beside `common`:
//! `#[path = "common/browser.rs"] mod kit;` (the API tests do not compile it).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// One browser at a time: the machine has two cores.
pub static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const INSTALL: &str = "the browser tests need headless Chromium and its driver: \
                       apt-get install -y chromium chromium-driver";

pub fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// chromedriver on a free loopback port, killed when dropped.
pub struct Driver {
    child: Child,
    pub port: u16,
    pub profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A test that fails before closing its session leaves Chromium
        // running after its driver is gone: end the processes that use this
        // test's own profile folder, and only those.
        let marker = format!("--user-data-dir={}", self.profile.path().display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == marker.as_bytes())
            {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
    }
}

pub fn driver() -> Driver {
    let chromedriver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
        .unwrap_or_else(|| panic!("chromedriver not found; {INSTALL}"));
    find(&["/usr/lib/chromium/chromium", "/usr/bin/chromium"])
        .unwrap_or_else(|| panic!("chromium not found; {INSTALL}"));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromedriver ({e}); {INSTALL}"));
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start listening within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        port,
        profile: tempfile::tempdir().unwrap(),
    }
}

pub async fn browser(driver: &Driver) -> Client {
    browser_with(driver, &[]).await
}

pub async fn browser_with(driver: &Driver, extra: &[&str]) -> Client {
    let binary = find(&["/usr/lib/chromium/chromium", "/usr/bin/chromium"]).unwrap();
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-default-apps",
        "--window-size=1360,1000",
        "--hide-scrollbars",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    args.push(format!(
        "--user-data-dir={}",
        driver.profile.path().display()
    ));
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"binary": binary, "args": args}),
    );
    // The page's console (script errors) for `script_errors`.
    capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap_or_else(|e| panic!("chromedriver could not start Chromium ({e}); {INSTALL}"))
}

/// Waits for an element (pages fill in after their scripts' API calls).
pub async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element '{css}' within 10 s: {e}"))
}

pub async fn wait_for_text(client: &Client, css: &str, wanted: &str) -> String {
    let started = Instant::now();
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
            && text.contains(wanted)
        {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "'{css}' never showed '{wanted}'"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_for_path(client: &Client, path: &str) {
    let started = Instant::now();
    loop {
        let url = client.current_url().await.unwrap();
        if url.path() == path {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still at {url}, expected {path}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn fill(client: &Client, css: &str, text: &str) {
    let field = wait_for(client, css).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

pub async fn sign_in(client: &Client, base: &str, (name, password): (&str, &str)) {
    client.goto(&format!("{base}/login")).await.unwrap();
    fill(client, "#name", name).await;
    fill(client, "#password", password).await;
    client
        .find(Locator::Css("#login-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let started = Instant::now();
    while client.current_url().await.unwrap().path() == "/login" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sign-in did not leave /login"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Saves a screenshot for docs/ when OATHDESK_SCREENSHOTS names a folder.
pub async fn screenshot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("OATHDESK_SCREENSHOTS") {
        let png = client.screenshot().await.unwrap();
        std::fs::write(Path::new(&dir).join(name), png).unwrap();
    }
}

pub fn base(address: SocketAddr) -> String {
    format!("http://{address}")
}

/// A field's current value.
pub async fn value_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no '{css}': {e}"))
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

pub async fn click(client: &Client, css: &str) {
    wait_for(client, css).await.click().await.unwrap();
}

/// The text of an element, or "" when it is hidden or missing.
pub async fn visible_text(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(element) if element.is_displayed().await.unwrap_or(false) => {
            element.text().await.unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// The script errors (uncaught exceptions, console.error) the browser
/// logged since the last call, from chromedriver's log endpoint.
pub async fn script_errors(driver: &Driver, client: &Client) -> Vec<String> {
    use std::io::{Read, Write};
    let session = client.session_id().await.unwrap().expect("a session");
    let body = r#"{"type":"browser"}"#;
    let mut stream = TcpStream::connect(("127.0.0.1", driver.port)).unwrap();
    write!(
        stream,
        "POST /session/{session}/se/log HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver may keep the connection open: read up to Content-Length.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    let text = loop {
        let n = stream.read(&mut buffer).unwrap();
        answer.extend_from_slice(&buffer[..n]);
        let whole = String::from_utf8_lossy(&answer).into_owned();
        if let Some(at) = whole.find("\r\n\r\n") {
            let length = whole[..at]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .expect("a Content-Length");
            if answer.len() >= at + 4 + length {
                break String::from_utf8_lossy(&answer[at + 4..at + 4 + length]).into_owned();
            }
        }
        assert!(n > 0, "chromedriver closed the log answer early");
    };
    let log: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    log["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| {
            entry["level"] == "SEVERE"
                && (entry["source"] == "javascript" || entry["source"] == "console-api")
        })
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Screenshots at the desk and on a phone.
pub async fn screenshots(client: &Client, name: &str) {
    screenshot(client, &format!("{name}.png")).await;
    client.set_window_size(390, 844).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    screenshot(client, &format!("{name}-phone.png")).await;
    client.set_window_size(1366, 900).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Waits until `script` (an expression) is true in the page.
pub async fn wait_until(client: &Client, script: &str, what: &str) {
    let started = Instant::now();
    loop {
        let value = client
            .execute(&format!("return !!({script})"), vec![])
            .await
            .unwrap();
        if value.as_bool() == Some(true) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// axe-core's browser build: OATHDESK_AXE names axe.min.js, or it is in
/// target/axe (`npm install --prefix target/axe axe-core@4`). The tests
/// inject it; the console never serves it.
pub fn axe_source() -> String {
    let path = std::env::var_os("OATHDESK_AXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/axe/node_modules/axe-core/axe.min.js")
        });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core not found at {} ({e}): install it with \
             'npm install --prefix target/axe axe-core@4' in the workspace, \
             or set OATHDESK_AXE to its axe.min.js",
            path.display()
        )
    })
}

/// Runs axe-core on the page shown; the serious and critical violations,
/// one line each with the elements they concern.
pub async fn axe_violations(client: &Client, axe: &str) -> Vec<String> {
    client.execute(axe, vec![]).await.unwrap();
    let found = client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               axe.run(document, { resultTypes: ["violations"] }).then((r) => done(
                 r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
                   .map((v) => v.impact + " " + v.id + ": " + v.help + " — " +
                     v.nodes.map((n) => n.target.join(" ")).join(", "))),
                 (e) => done(["axe failed: " + e]));"#,
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

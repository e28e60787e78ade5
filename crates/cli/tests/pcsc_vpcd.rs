//! `oathdesk device …` through the real PC/SC stack: Debian's `pcscd` with
//! vsmartcard's virtual reader driver (`vsmartcard-vpcd`), whose cards are
//! our simulators speaking the vpcd socket protocol
//! (`oathdesk_devices::vpcd`). Nothing here is replaced: the CLI loads
//! libpcsclite, pcscd runs the reader driver, the simulator answers.
//!
//! The Debian driver's one reader entry (`/etc/reader.conf.d/vpcd`,
//! `DEVICENAME /dev/null:0x8C7B`) gives two readers, `Virtual PCD 00 00` on
//! port 35963 and `Virtual PCD 00 01` on the next port. pcscd's socket is the
//! machine's one (`/run/pcscd/pcscd.comm`): these scenarios run in one test,
//! one after the other. They fail, never skip, without pcscd, vpcd or
//! pcsc-tools' `scriptor` (the second PC/SC client).

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use oathdesk_devices::Family;
use oathdesk_devices::transport::{SimTransport, SlowTransport, Transport, TransportError};
use oathdesk_devices::vpcd;
use serde_json::Value;

const SECRET: &str = "JBSWY3DPEHPK3PXP";
const VPCD_CONF: &str = "/etc/reader.conf.d/vpcd";
const PCSCD_SOCKET: &str = "/run/pcscd/pcscd.comm";

/// The first vpcd port, from the driver's reader entry.
fn vpcd_port() -> u16 {
    let conf = std::fs::read_to_string(VPCD_CONF).unwrap_or_else(|e| {
        panic!(
            "{VPCD_CONF}: {e}: install the virtual reader (apt-get install vsmartcard-vpcd pcscd)"
        )
    });
    let device = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("DEVICENAME"))
        .unwrap_or_else(|| panic!("{VPCD_CONF} has no DEVICENAME line"));
    let hex = device
        .trim()
        .rsplit_once(":0x")
        .expect("DEVICENAME /dev/null:0xPORT")
        .1;
    u16::from_str_radix(hex.trim(), 16).expect("a hexadecimal port")
}

/// Starts pcscd unless it runs; waits for its socket.
fn pcscd() {
    let up = || std::os::unix::net::UnixStream::connect(PCSCD_SOCKET).is_ok();
    if !up() {
        let status = Process::new("pcscd")
            .status()
            .unwrap_or_else(|e| panic!("pcscd: {e}: apt-get install pcscd vsmartcard-vpcd"));
        assert!(status.success(), "pcscd did not start: {status}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !up() {
        assert!(
            Instant::now() < deadline,
            "pcscd started but never opened {PCSCD_SOCKET}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A card inserted into one virtual reader; removed on drop.
struct Inserted {
    stream: TcpStream,
    thread: Option<JoinHandle<()>>,
}

impl Inserted {
    fn new(port: u16, mut card: impl vpcd::Card + Send + 'static, atr: Vec<u8>) -> Inserted {
        // pcscd's driver listens once it has loaded the reader.
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => break stream,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "the virtual reader does not listen on port {port} ({e}): does pcscd read {VPCD_CONF}?"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let served = stream.try_clone().unwrap();
        let thread = std::thread::spawn(move || {
            let _ = vpcd::serve(served, &mut card, &atr);
        });
        Inserted {
            stream,
            thread: Some(thread),
        }
    }
}

impl Drop for Inserted {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A simulated token kept in `file`, reopened at each power-on, each APDU
/// delayed by `latency` (a real token's pace: it widens the window a
/// second client would need to slip in).
fn simulated(file: PathBuf, family: Family, latency: Duration) -> impl vpcd::Card + Send {
    move || -> Result<Box<dyn Transport + Send>, TransportError> {
        let sim = SimTransport::open_file(&file, Some(family), None)?;
        Ok(Box::new(SlowTransport::new(sim, latency)))
    }
}

/// Another program's card (a YubiKey, a bank card): no Token2 command.
struct ForeignCard;

impl Transport for ForeignCard {
    fn transmit(&mut self, _command: &[u8]) -> Result<Vec<u8>, TransportError> {
        Ok(vec![0x6D, 0x00])
    }
    fn describe(&self) -> String {
        "another vendor's card".into()
    }
}

fn foreign() -> impl vpcd::Card + Send {
    || -> Result<Box<dyn Transport + Send>, TransportError> { Ok(Box::new(ForeignCard)) }
}

const YUBIKEY_ATR: [u8; 18] = [
    0x3B, 0xF8, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x59, 0x75, 0x62, 0x69, 0x6B, 0x65, 0x79,
    0x34, 0xD4,
];

mod common;

/// A desk whose commands run in its folder with no transport or device key
/// of the developer's.
struct Desk {
    desk: common::desk::Desk,
}

impl Desk {
    fn new() -> Desk {
        Desk {
            desk: common::desk::Desk::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.desk.file(name)
    }

    fn run(&self, args: &[&str]) -> Command {
        let mut cmd = self.desk.run(args);
        cmd.env_remove("OATHDESK_TRANSPORT")
            .env_remove("OATHDESK_DEVICE_KEY")
            .current_dir(self.desk.dir.path())
            .timeout(Duration::from_secs(60));
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Waits until pcscd has noticed the inserted cards.
    fn wait_for_token(&self, spec: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let output = self
                .run(&["device", "info", "--json", "--transport", spec])
                .output()
                .unwrap();
            if output.status.success() {
                return serde_json::from_slice(&output.stdout).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "pcscd never showed the token: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Polls `reader` with challenge requests through `scriptor` (another PC/SC
/// client, no transaction) until stopped; counts the polls started.
/// Runs `scriptor` against `reader` again and again until `stop`; `polls`
/// counts the runs started, `busy` says whether one is running now.
fn poller(
    reader: &str,
    stop: Arc<AtomicBool>,
    polls: Arc<AtomicUsize>,
    busy: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let reader = reader.to_owned();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            busy.store(true, Ordering::SeqCst);
            polls.fetch_add(1, Ordering::SeqCst);
            let mut child = Process::new("scriptor")
                .args(["-r", &reader])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("scriptor (pcsc-tools) runs: apt-get install pcsc-tools");
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all("80 4B 08 00 00\n".repeat(10).as_bytes());
            drop(stdin);
            let _ = child.wait();
            busy.store(false, Ordering::SeqCst);
        }
    })
}

fn display(desk: &Desk, file: &Path, slot: u8) -> String {
    desk.ok(&[
        "device",
        "sim",
        "show",
        file.to_str().unwrap(),
        "--slot",
        &slot.to_string(),
    ])
    .trim()
    .to_owned()
}

#[test]
fn tokens_through_pcscd_and_a_virtual_reader() {
    assert!(
        Process::new("scriptor").arg("-h").output().is_ok(),
        "scriptor (pcsc-tools) is needed as the second PC/SC client: apt-get install pcsc-tools"
    );
    let port = vpcd_port();
    pcscd();
    let desk = Desk::new();
    let molto_file = desk.path("molto.json");
    desk.ok(&["device", "sim", "new", molto_file.to_str().unwrap()]);
    let serial = desk.json(&[
        "device",
        "info",
        "--json",
        "--transport",
        &format!("sim:{}", molto_file.display()),
    ])["serial"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another vendor's card in the first reader, the Molto-2 in the second:
    // "the first reader with a card" would be the wrong one.
    let other = Inserted::new(port, foreign(), YUBIKEY_ATR.to_vec());
    let molto = Inserted::new(
        port + 1,
        simulated(
            molto_file.clone(),
            Family::Molto2,
            Duration::from_millis(15),
        ),
        vpcd::SIM_ATR.to_vec(),
    );
    let info = desk.wait_for_token("pcsc");
    assert_eq!(info["serial"], serial.as_str(), "{info}");
    assert!(
        info["via"]
            .as_str()
            .unwrap()
            .contains("PC/SC reader 'Virtual PCD 00 01'"),
        "{info}"
    );

    // The default transport and `device list` find it the same way, and the
    // list says which transport reached it.
    let default_info = desk.json(&["device", "info", "--json"]);
    assert_eq!(default_info["serial"], serial.as_str());
    let listed = desk.json(&["device", "list", "--json"]);
    let tokens = listed.as_array().unwrap();
    assert_eq!(tokens.len(), 1, "{listed}");
    assert_eq!(tokens[0]["transport"], "pcsc:Virtual PCD 00 01");
    assert_eq!(tokens[0]["serial"], serial.as_str());

    // A burn while another client polls the token with challenges: the
    // session's transaction keeps them out of its challenge and answer.
    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicUsize::new(0));
    let busy = Arc::new(AtomicBool::new(false));
    let polling = poller(
        "Virtual PCD 00 01",
        stop.clone(),
        polls.clone(),
        busy.clone(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let before = polls.load(Ordering::SeqCst);
    let busy_at_start = busy.load(Ordering::SeqCst);
    let burned = desk
        .run(&[
            "device",
            "burn",
            "--slot",
            "3",
            SECRET,
            "--user",
            "bob@contoso.com",
            "--transport",
            "pcsc",
            "--factory-key",
        ])
        .output()
        .unwrap();
    let during = polls.load(Ordering::SeqCst) - before;
    stop.store(true, Ordering::SeqCst);
    polling.join().unwrap();
    assert!(
        burned.status.success(),
        "the burn failed while another client polled: {}",
        String::from_utf8_lossy(&burned.stderr)
    );
    // On a loaded machine one scriptor run can outlast the whole burn: then
    // it was running when the burn began, which overlaps as well.
    assert!(
        during > 0 || busy_at_start,
        "the poller never ran during the burn"
    );
    let shown = display(&desk, &molto_file, 3);
    assert!(
        shown.chars().all(|c| c.is_ascii_digit()) && shown.len() == 6,
        "{shown}"
    );

    // The clock through PC/SC.
    desk.ok(&[
        "device",
        "sync-time",
        "--slot",
        "3",
        "--transport",
        "pcsc",
        "--factory-key",
    ]);

    // A single-profile token on the other reader: two tokens, so plain
    // `pcsc` refuses to guess, and the reader's name picks one.
    drop(other);
    let single_file = desk.path("single.json");
    desk.ok(&[
        "device",
        "sim",
        "new",
        single_file.to_str().unwrap(),
        "--family",
        "single-profile",
    ]);
    let _single = Inserted::new(
        port,
        simulated(single_file.clone(), Family::SingleProfile, Duration::ZERO),
        vpcd::SIM_ATR.to_vec(),
    );
    let single = desk.wait_for_token("pcsc:Virtual PCD 00 00");
    assert_eq!(single["family"], "single-profile", "{single}");
    let both = desk
        .run(&["device", "info", "--transport", "pcsc"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert!(!both.status.success());
    assert!(stderr.contains("2 Token2 tokens are connected"), "{stderr}");
    drop(molto);
}

/// `device list` honours OATHDESK_TRANSPORT as every device command does.
#[test]
fn device_list_honours_the_transport_from_the_environment() {
    let desk = Desk::new();
    let file = desk.path("env.json");
    desk.ok(&["device", "sim", "new", file.to_str().unwrap()]);
    let output = desk
        .run(&["device", "list", "--json"])
        .env("OATHDESK_TRANSPORT", format!("sim:{}", file.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert!(listed[0]["transport"].as_str().unwrap().starts_with("sim:"));
}

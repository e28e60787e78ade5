//! The desk the device tests work at: a vault, simulated tokens in files,
//! and helpers to run `oathdesk` against them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

pub const SECRET: &str = "JBSWY3DPEHPK3PXP";
pub const MOLTO: &str = "826658719844499";

/// The shared desk (`common::desk`), run in its folder with no transport
/// or device key of the developer's.
pub struct Desk {
    desk: crate::common::desk::Desk,
}

impl Desk {
    pub fn new() -> Desk {
        Desk {
            desk: crate::common::desk::Desk::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.desk.file(name)
    }

    pub fn run(&self, args: &[&str]) -> Command {
        let mut cmd = self.desk.run(args);
        cmd.env_remove("OATHDESK_TRANSPORT")
            .env_remove("OATHDESK_DEVICE_KEY")
            .current_dir(self.desk.dir.path());
        cmd
    }

    /// A simulated token file; `args` go to `device sim new`. A Molto-2
    /// without `--serial` gets [`MOLTO`] (new simulators get fresh serials).
    pub fn sim(&self, name: &str, args: &[&str]) -> String {
        let mut all = vec!["device", "sim", "new", name];
        all.extend_from_slice(args);
        if !args.contains(&"--serial") && !args.contains(&"single-profile") {
            all.extend_from_slice(&["--serial", MOLTO]);
        }
        self.run(&all).assert().success();
        format!("sim:{name}")
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    pub fn tokens(&self) -> Vec<(String, String, String)> {
        self.json(&["token", "list", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let reference = match (&t["serial"], &t["slot"]) {
                    (Value::String(s), Value::Number(n)) => format!("{s}:{n}"),
                    (Value::String(s), _) => s.clone(),
                    _ => format!("#{}", t["id"]),
                };
                (
                    reference,
                    t["state"].as_str().unwrap().to_owned(),
                    t["user"].as_str().unwrap_or("-").to_owned(),
                )
            })
            .collect()
    }

    /// What the simulated display shows.
    pub fn display(&self, file: &str, slot: u8) -> String {
        let output = self
            .run(&["device", "sim", "show", file, "--slot", &slot.to_string()])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// The code the vault gives the helpdesk for `user`, after a call-back
    /// to the mobile phone on file (given to them first).
    pub fn vault_code(&self, user: &str) -> String {
        let directory = self.path("directory.csv");
        std::fs::write(&directory, format!("upn,mobile\n{user},+44 7700 900123\n")).unwrap();
        self.run(&["user", "import", directory.to_str().unwrap()])
            .assert()
            .success();
        let grant = self.json(&[
            "helpdesk",
            "code",
            "--user",
            user,
            "--method",
            "call-back",
            "--confirm",
            "all",
            "--evidence",
            "called the mobile on file, the user answered",
            "--ticket",
            "INC0000001",
            "--json",
        ]);
        grant["code"].as_str().unwrap().to_owned()
    }

    /// The token shows what the vault computes (retried across a step
    /// boundary).
    pub fn assert_same_code(&self, file: &str, slot: u8, user: &str) {
        for _ in 0..3 {
            let shown = self.display(file, slot);
            let expected = self.vault_code(user);
            if shown == expected {
                return;
            }
        }
        panic!("the token and the vault disagree for {user} in slot {slot}");
    }

    pub fn stderr(&self, args: &[&str]) -> String {
        let output = self.run(args).output().unwrap();
        assert!(!output.status.success(), "{args:?} should fail");
        assert_eq!(output.status.code(), Some(1));
        String::from_utf8(output.stderr).unwrap()
    }
}

/// Stderr from the error on (warnings before it are checked elsewhere).
pub fn error_part(stderr: &str) -> &str {
    &stderr[stderr.find("oathdesk: error: ").expect("an error")..]
}

pub fn sim_apdus(path: &Path) -> u64 {
    let sim: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    sim["apdus_received"].as_u64().unwrap()
}

//! The exec bridge: `--transport exec:COMMAND`.
//!
//! COMMAND runs under the shell (`sh -c`, `cmd /C` on Windows) once per
//! session. For every APDU oathdesk writes one line of upper-case hex to its
//! standard input and reads one line of hex (response data and status word)
//! from its standard output. That is all a remote reader, a phone bridge or
//! an external simulator has to implement. Its standard error passes through
//! to the terminal.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use super::{Transport, TransportError};

/// How long a bridge may take for one APDU (writes on slow readers take
/// seconds; spec §1.2).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A bridge program speaking hex lines.
pub struct ExecTransport {
    command: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<std::io::Result<String>>,
    timeout: Duration,
}

impl ExecTransport {
    /// Starts the bridge.
    pub fn spawn(command: &str) -> Result<ExecTransport, TransportError> {
        let mut shell = if cfg!(windows) {
            let mut c = Command::new("cmd");
            c.arg("/C");
            c
        } else {
            let mut c = Command::new("sh");
            c.arg("-c");
            c
        };
        let mut child = shell
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                TransportError::NotFound(format!("cannot start the bridge '{command}': {e}"))
            })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        // A reader thread, so that a bridge that never answers times out
        // instead of hanging oathdesk.
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(ExecTransport {
            command: command.to_owned(),
            child,
            stdin,
            lines,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Changes the per-APDU timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> ExecTransport {
        self.timeout = timeout;
        self
    }

    fn ended(&mut self) -> TransportError {
        let status = self
            .child
            .try_wait()
            .ok()
            .flatten()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        TransportError::Lost(format!("the bridge '{}' ended{status}", self.command))
    }
}

impl Transport for ExecTransport {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut line = crate::hex::encode(command);
        line.push('\n');
        let written = match &mut self.stdin {
            Some(stdin) => stdin
                .write_all(line.as_bytes())
                .and_then(|()| stdin.flush())
                .is_ok(),
            None => false,
        };
        if !written {
            return Err(self.ended());
        }
        let answer = match self.lines.recv_timeout(self.timeout) {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                return Err(TransportError::Lost(format!(
                    "reading from the bridge '{}': {e}",
                    self.command
                )));
            }
            Err(RecvTimeoutError::Disconnected) => return Err(self.ended()),
            Err(RecvTimeoutError::Timeout) => {
                return Err(TransportError::Lost(format!(
                    "the bridge '{}' did not answer within {} s",
                    self.command,
                    self.timeout.as_secs()
                )));
            }
        };
        let answer = answer.trim();
        crate::hex::decode(answer)
            .filter(|bytes| bytes.len() >= 2)
            .ok_or_else(|| {
                TransportError::Io(format!(
                    "the bridge '{}' answered a line that is not hex data ending in a status word \
                     ({} characters); it must print one line of hex per APDU",
                    self.command,
                    answer.len()
                ))
            })
    }

    fn describe(&self) -> String {
        format!("bridge '{}'", self.command)
    }
}

impl Drop for ExecTransport {
    fn drop(&mut self) {
        // End of input tells the bridge the session is over.
        drop(self.stdin.take());
        for _ in 0..20 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn hex_lines_both_ways() {
        // A bridge that logs what it got to stderr-free stdout: answers each
        // line with the line's length in bytes, then 9000.
        let mut bridge = ExecTransport::spawn(
            r#"while read line; do printf '%02X9000\n' $(( ${#line} / 2 )); done"#,
        )
        .unwrap();
        assert_eq!(
            bridge.transmit(&[0x80, 0x41, 0, 0, 0]).unwrap(),
            [5, 0x90, 0]
        );
        assert_eq!(bridge.transmit(&[0x80]).unwrap(), [1, 0x90, 0]);
        assert!(bridge.describe().starts_with("bridge 'while read line"));
    }

    #[test]
    fn bridge_failures_are_named() {
        let mut ended = ExecTransport::spawn("exit 3").unwrap();
        let error = ended.transmit(&[0x80, 0x41, 0, 0, 0]).unwrap_err();
        assert!(
            matches!(&error, TransportError::Lost(m) if m.starts_with("the bridge 'exit 3' ended")),
            "{error}"
        );
        let mut garbage = ExecTransport::spawn("while read l; do echo hello; done").unwrap();
        let error = garbage.transmit(&[0x80]).unwrap_err().to_string();
        assert!(error.contains("not hex data"), "{error}");
        let mut silent = ExecTransport::spawn("sleep 5")
            .unwrap()
            .with_timeout(Duration::from_millis(200));
        let error = silent.transmit(&[0x80]).unwrap_err().to_string();
        assert!(error.contains("did not answer within"), "{error}");
    }
}

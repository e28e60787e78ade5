//! One open sink and how a line is written to it.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use oathdesk_vault::audit::{AuditRecord, rfc3339};

use crate::spec::{Facility, SinkSpec};
use crate::syslog;

/// The `schema` of a gap report.
pub const GAP_SCHEMA: &str = "oathdesk.audit.gap/1";

/// What goes to a sink: an entry, or the report that some never went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Entry(Box<AuditRecord>),
    /// Entries `from..=to` were dropped from a full queue: they are in the
    /// vault, and `oathdesk audit ship --from FROM` sends them.
    Gap {
        from: i64,
        to: i64,
        at: u64,
    },
}

impl Line {
    /// The JSON form. A gap is `{"schema":"oathdesk.audit.gap/1", …}`: no
    /// `audit_head`, so nothing mistakes it for an entry.
    pub fn json(&self) -> String {
        match self {
            Line::Entry(record) => record.line(),
            Line::Gap { from, to, at } => serde_json::json!({
                "schema": GAP_SCHEMA,
                "time": rfc3339(*at),
                "at": at,
                "missing_from": from,
                "missing_to": to,
                "message": format!(
                    "audit entries {from} to {to} were not sent to this sink (its queue was full); \
                     they are in the vault: send them with 'oathdesk audit ship --to SINK --from {from}'"
                ),
            })
            .to_string(),
        }
    }

    /// The seq of an entry.
    pub fn seq(&self) -> Option<i64> {
        match self {
            Line::Entry(record) => Some(record.seq),
            Line::Gap { .. } => None,
        }
    }

    fn syslog_message(&self, facility: Facility, hostname: &str) -> String {
        let json = self.json();
        let (timestamp, msgid, severity, sequence) = match self {
            Line::Entry(record) => {
                let alarming = record.outcome == "refused"
                    || record.action == "forbidden"
                    || record.action == "row.altered";
                let severity = if alarming {
                    syslog::WARNING
                } else {
                    syslog::NOTICE
                };
                (
                    record.time.clone(),
                    record.action.as_str(),
                    severity,
                    Some(record.seq),
                )
            }
            Line::Gap { at, .. } => (rfc3339(*at), "audit.gap", syslog::WARNING, None),
        };
        syslog::message(
            &syslog::Header {
                facility,
                severity,
                timestamp: &timestamp,
                hostname,
                procid: std::process::id(),
                msgid,
                sequence,
            },
            &json,
        )
    }
}

/// A sink, opened. Sockets connect on the first send and again after an
/// error; the file is opened for each line, so a log rotation is followed.
pub struct Connection {
    spec: SinkSpec,
    hostname: String,
    open: Option<Open>,
}

enum Open {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Unix(UnixDatagram),
}

/// How long a connect or write to a syslog server may take before it
/// counts as down.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(5);

impl Connection {
    pub fn new(spec: SinkSpec) -> Connection {
        Connection {
            spec,
            hostname: syslog::hostname(),
            open: None,
        }
    }

    pub fn spec(&self) -> &SinkSpec {
        &self.spec
    }

    /// Sends one line; on an error the connection is dropped, and the next
    /// send connects afresh.
    pub fn send(&mut self, line: &Line) -> std::io::Result<()> {
        let outcome = self.try_send(line);
        if outcome.is_err() {
            self.open = None;
        }
        outcome
    }

    fn try_send(&mut self, line: &Line) -> std::io::Result<()> {
        match &self.spec {
            SinkSpec::File(path) => append(path, &line.json()),
            SinkSpec::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", line.json())?;
                out.flush()
            }
            SinkSpec::SyslogUdp { address, facility } => {
                let message = line.syslog_message(*facility, &self.hostname);
                if self.open.is_none() {
                    let bind = if address.starts_with('[') {
                        "[::]:0"
                    } else {
                        "0.0.0.0:0"
                    };
                    let socket = UdpSocket::bind(bind)?;
                    socket.connect(address.as_str())?;
                    self.open = Some(Open::Udp(socket));
                }
                let Some(Open::Udp(socket)) = &self.open else {
                    unreachable!()
                };
                socket.send(message.as_bytes()).map(drop)
            }
            SinkSpec::SyslogTcp { address, facility } => {
                let message = line.syslog_message(*facility, &self.hostname);
                if self.open.is_none() {
                    self.open = Some(Open::Tcp(connect_tcp(address)?));
                }
                let Some(Open::Tcp(stream)) = &mut self.open else {
                    unreachable!()
                };
                stream.write_all(syslog::octet_counted(&message).as_bytes())?;
                stream.flush()
            }
            SinkSpec::SyslogUnix { path, facility } => {
                let message = line.syslog_message(*facility, &self.hostname);
                if self.open.is_none() {
                    let socket = UnixDatagram::unbound()?;
                    socket.connect(path)?;
                    self.open = Some(Open::Unix(socket));
                }
                let Some(Open::Unix(socket)) = &self.open else {
                    unreachable!()
                };
                socket.send(message.as_bytes()).map(drop)
            }
        }
    }
}

fn connect_tcp(address: &str) -> std::io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for candidate in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&candidate, NETWORK_TIMEOUT) {
            Ok(stream) => {
                stream.set_write_timeout(Some(NETWORK_TIMEOUT))?;
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{address} has no address"),
        )
    }))
}

/// Appends a line with one write (concurrent appenders never interleave
/// inside it); a new file is readable by its owner only.
fn append(path: &Path, json: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{json}\n").as_bytes())
}

//! Where entries go, as an operator writes it on the command line.

use std::fmt;
use std::path::PathBuf;

/// A sink, parsed from its text form (`--audit-sink`, `OATHDESK_AUDIT_SINK`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkSpec {
    /// `file:PATH`: JSON lines appended to PATH (created owner-only).
    File(PathBuf),
    /// `stdout`: JSON lines on the standard output.
    Stdout,
    /// `syslog+udp://HOST:PORT` (514 if no port): one datagram per entry.
    SyslogUdp { address: String, facility: Facility },
    /// `syslog+tcp://HOST:PORT` (601 if no port): RFC 6587 octet counting.
    SyslogTcp { address: String, facility: Facility },
    /// `syslog+unix:///dev/log`: the local syslog daemon's datagram socket.
    SyslogUnix { path: PathBuf, facility: Facility },
}

/// Why a sink's text was refused. The message says what to write instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error(
        "audit sink '{0}' is not one of: file:PATH, stdout, syslog+udp://HOST:PORT, \
         syslog+tcp://HOST:PORT, syslog+unix:///dev/log"
    )]
    UnknownKind(String),
    #[error("audit sink '{0}' names no file: write file:/var/log/oathdesk/audit.jsonl")]
    NoPath(String),
    #[error("audit sink '{0}' names no host: write {1}://127.0.0.1:{2}")]
    NoHost(String, &'static str, u16),
    #[error("audit sink '{0}': the port '{1}' is not a number from 1 to 65535")]
    BadPort(String, String),
    #[error(
        "audit sink '{0}': the socket path must be absolute: write syslog+unix:///dev/log \
         (three slashes)"
    )]
    RelativeSocket(String),
    #[error(
        "audit sink '{0}': unknown option '{1}'; the only option is facility (?facility=local0)"
    )]
    UnknownOption(String, String),
    #[error(
        "audit sink '{0}': '{1}' is not a syslog facility: use one of kern, user, mail, \
         daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0 … local7"
    )]
    UnknownFacility(String, String),
}

/// A syslog facility (RFC 5424 §6.2.1). The default is `authpriv`: these
/// are the security records of who read which secret, the facility that
/// syslog daemons keep in a log only administrators read
/// (`/var/log/auth.log`, `/var/log/secure`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facility(u8);

const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

impl Facility {
    pub const AUTHPRIV: Facility = Facility(10);

    /// The facility of a name (`local0`), if it is one.
    pub fn named(name: &str) -> Option<Facility> {
        FACILITIES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, code)| Facility(*code))
    }

    /// Its number, as PRI multiplies it by 8.
    pub fn code(self) -> u8 {
        self.0
    }

    fn name(self) -> &'static str {
        FACILITIES
            .iter()
            .find(|(_, code)| *code == self.0)
            .map_or("?", |(name, _)| name)
    }
}

impl Default for Facility {
    fn default() -> Facility {
        Facility::AUTHPRIV
    }
}

impl std::str::FromStr for SinkSpec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<SinkSpec, SpecError> {
        let text = text.trim();
        let whole = || text.to_owned();
        if text == "stdout" || text == "-" {
            return Ok(SinkSpec::Stdout);
        }
        if let Some(path) = text.strip_prefix("file:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(SpecError::NoPath(whole()));
            }
            return Ok(SinkSpec::File(PathBuf::from(path)));
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| SpecError::UnknownKind(whole()))?;
        let (target, query) = rest.split_once('?').unwrap_or((rest, ""));
        let facility = parse_options(text, query)?;
        match scheme {
            "syslog+udp" => Ok(SinkSpec::SyslogUdp {
                address: host_port(text, target, "syslog+udp", 514)?,
                facility,
            }),
            "syslog+tcp" => Ok(SinkSpec::SyslogTcp {
                address: host_port(text, target, "syslog+tcp", 601)?,
                facility,
            }),
            "syslog+unix" => {
                if !target.starts_with('/') {
                    return Err(SpecError::RelativeSocket(whole()));
                }
                Ok(SinkSpec::SyslogUnix {
                    path: PathBuf::from(target),
                    facility,
                })
            }
            _ => Err(SpecError::UnknownKind(whole())),
        }
    }
}

fn parse_options(text: &str, query: &str) -> Result<Facility, SpecError> {
    let mut facility = Facility::default();
    for option in query.split('&').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some(("facility", name)) => {
                facility = Facility::named(name)
                    .ok_or_else(|| SpecError::UnknownFacility(text.into(), name.into()))?;
            }
            _ => return Err(SpecError::UnknownOption(text.into(), option.into())),
        }
    }
    Ok(facility)
}

/// `HOST:PORT`, the port defaulted; an IPv6 address goes in brackets.
fn host_port(
    text: &str,
    target: &str,
    scheme: &'static str,
    default: u16,
) -> Result<String, SpecError> {
    let target = target.trim_end_matches('/');
    let (host, port) = match target.rsplit_once(':') {
        // `[::1]` alone: the colons are the address's.
        Some((host, port)) if !port.ends_with(']') => (host, Some(port)),
        _ => (target, None),
    };
    if host.is_empty() {
        return Err(SpecError::NoHost(text.into(), scheme, default));
    }
    let port = match port {
        None => default,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| SpecError::BadPort(text.into(), port.into()))?,
    };
    Ok(format!("{host}:{port}"))
}

impl fmt::Display for SinkSpec {
    /// The text form back, to name the sink in reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let facility = |f: &mut fmt::Formatter<'_>, facility: &Facility| {
            if *facility == Facility::default() {
                Ok(())
            } else {
                write!(f, "?facility={}", facility.name())
            }
        };
        match self {
            SinkSpec::File(path) => write!(f, "file:{}", path.display()),
            SinkSpec::Stdout => f.write_str("stdout"),
            SinkSpec::SyslogUdp {
                address,
                facility: c,
            } => {
                write!(f, "syslog+udp://{address}")?;
                facility(f, c)
            }
            SinkSpec::SyslogTcp {
                address,
                facility: c,
            } => {
                write!(f, "syslog+tcp://{address}")?;
                facility(f, c)
            }
            SinkSpec::SyslogUnix { path, facility: c } => {
                write!(f, "syslog+unix://{}", path.display())?;
                facility(f, c)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_form_parses_and_prints_back() {
        for text in [
            "file:/var/log/oathdesk/audit.jsonl",
            "stdout",
            "syslog+udp://127.0.0.1:514",
            "syslog+tcp://siem.example.org:601?facility=local3",
            "syslog+unix:///dev/log",
            "syslog+tcp://[::1]:6514",
        ] {
            let spec: SinkSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!(
            "syslog+udp://logs".parse::<SinkSpec>().unwrap(),
            SinkSpec::SyslogUdp {
                address: "logs:514".into(),
                facility: Facility::AUTHPRIV
            }
        );
    }

    #[test]
    fn mistakes_are_named() {
        let error = |text: &str| text.parse::<SinkSpec>().unwrap_err();
        assert!(matches!(error("syslog://x"), SpecError::UnknownKind(_)));
        assert!(matches!(error("/var/log/a"), SpecError::UnknownKind(_)));
        assert!(matches!(error("file:"), SpecError::NoPath(_)));
        assert!(matches!(error("syslog+tcp://:601"), SpecError::NoHost(..)));
        assert!(matches!(
            error("syslog+udp://h:99999"),
            SpecError::BadPort(..)
        ));
        assert!(matches!(
            error("syslog+unix://dev/log"),
            SpecError::RelativeSocket(_)
        ));
        assert!(matches!(
            error("syslog+udp://h?level=1"),
            SpecError::UnknownOption(..)
        ));
        assert!(matches!(
            error("syslog+udp://h?facility=local9"),
            SpecError::UnknownFacility(..)
        ));
    }
}

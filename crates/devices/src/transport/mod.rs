//! How APDUs reach a token.
//!
//! One trait, [`Transport`]: bytes of a command APDU in, bytes of the
//! response APDU (data and status word) out. Implementations:
//!
//! | spec | what |
//! | --- | --- |
//! | `auto` (default) | the one Token2 token PC/SC or direct USB reaches, PC/SC first |
//! | `usb[:N]` | direct USB CCID with `nusb` (feature `usb`): Token2 devices only, `usb:N` from `device list`, or `usb:VID:PID` for a reader the user names |
//! | `pcsc[:READER]` | the system's PC/SC stack (feature `pcsc`, loaded at run time) |
//! | `exec:COMMAND` | another program: one line of upper-case hex per APDU each way |
//! | `sim:FILE` | a simulated token kept in FILE (created on first use) |
//!
//! [`open`] turns such a spec into a transport. [`Link`] sits on top: it
//! counts APDUs, traces them with secrets redacted, and handles the T=0
//! `61xx`/`6Cxx` continuations of contact readers.

mod exec;
mod fault;
mod link;
#[cfg(feature = "pcsc")]
pub mod pcsc;
mod simulated;
#[cfg(feature = "usb")]
pub mod usb;

use std::path::PathBuf;
use std::time::Duration;

pub use exec::ExecTransport;
pub use fault::{Fault, FaultyTransport, SlowTransport};
pub use link::{Link, TraceDirection};
pub use simulated::{Clock, SimTransport};

use crate::params::Family;

/// A way to exchange APDUs with one token.
pub trait Transport {
    /// Sends one command APDU and returns the response APDU.
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;

    /// What this transport is connected to, for messages ("USB 349E:0300
    /// bus 1 address 7", "simulated Molto-2 in token.json").
    fn describe(&self) -> String;

    /// The token family, when the transport can tell (USB product id, a
    /// simulator file); otherwise the caller asks or probes.
    fn family_hint(&self) -> Option<Family> {
        None
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        (**self).transmit(command)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn family_hint(&self) -> Option<Family> {
        (**self).family_hint()
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        (**self).transmit(command)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn family_hint(&self) -> Option<Family> {
        (**self).family_hint()
    }
}

/// A transport failed. None of these messages carries APDU data.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No token (or no reader) to talk to.
    #[error("{0}")]
    NotFound(String),
    /// The token is there but another program holds it.
    #[error("{0}")]
    Busy(String),
    /// The connection went away mid-exchange (cable pulled, token removed
    /// from the reader, bridge program ended).
    #[error("the connection to the token was lost: {0}")]
    Lost(String),
    /// Anything else the transport reports.
    #[error("{0}")]
    Io(String),
    /// A transport spec that cannot be used.
    #[error("{0}")]
    Spec(String),
}

/// The transports this build has, for help texts.
pub fn available() -> &'static str {
    match (cfg!(feature = "usb"), cfg!(feature = "pcsc")) {
        (true, true) => "auto, pcsc[:READER], usb[:N], exec:COMMAND, sim:FILE",
        (true, false) => "auto, usb[:N], exec:COMMAND, sim:FILE (this build has no PC/SC)",
        (false, true) => "auto, pcsc[:READER], exec:COMMAND, sim:FILE",
        (false, false) => "exec:COMMAND, sim:FILE",
    }
}

/// What `device list` found without a transport being chosen: the specs to
/// open, and why a transport found nothing (PC/SC not installed, no USB).
#[derive(Debug, Default)]
pub struct Discovery {
    pub specs: Vec<String>,
    pub notes: Vec<String>,
}

/// The tokens this build can find by itself, PC/SC readers and direct-USB
/// Token2 devices together, for `device list` and `auto`.
pub fn discover() -> Discovery {
    #[allow(unused_mut)]
    let mut found = Discovery::default();
    #[cfg(feature = "pcsc")]
    match pcsc::readers() {
        Ok(readers) => found
            .specs
            .extend(readers.into_iter().map(|r| format!("pcsc:{r}"))),
        Err(e) => found.notes.push(format!("PC/SC: {e}")),
    }
    #[cfg(feature = "usb")]
    match usb::find() {
        Ok(devices) => found
            .specs
            .extend((0..devices.len()).map(|i| format!("usb:{i}"))),
        Err(e) => found.notes.push(format!("USB: {e}")),
    }
    found
}

/// `auto`: PC/SC first (on Windows and macOS, and on Linux with pcscd
/// running, the system holds the token), then direct USB; the reasons of
/// both when neither reaches a token.
fn open_auto() -> Result<Box<dyn Transport>, TransportError> {
    #[allow(unused_mut)]
    let mut reasons: Vec<String> = Vec::new();
    #[cfg(feature = "pcsc")]
    match pcsc::PcscTransport::open(None) {
        Ok(transport) => return Ok(Box::new(transport)),
        // Several tokens, or one held by another program: the user decides.
        Err(e @ (TransportError::Spec(_) | TransportError::Busy(_))) => return Err(e),
        Err(e) => reasons.push(format!("PC/SC: {e}")),
    }
    #[cfg(feature = "usb")]
    match usb::UsbTransport::open(None) {
        Ok(transport) => return Ok(Box::new(transport)),
        Err(e @ TransportError::Busy(_)) => return Err(e),
        Err(e) => reasons.push(format!("USB: {e}")),
    }
    if reasons.is_empty() {
        return Err(TransportError::Spec(format!(
            "this build reaches no hardware: use {}",
            available()
        )));
    }
    Err(TransportError::NotFound(format!(
        "no token found. {}",
        reasons.join(". ")
    )))
}

/// Options of a `sim:` spec, after a `?`: `family=`, `serial=`, and the
/// fault injection and latency used by tests and benchmarks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimSpec {
    pub path: PathBuf,
    /// Family of a token created on first use (default Molto-2).
    pub family: Option<Family>,
    pub serial: Option<String>,
    pub fault: Option<Fault>,
    pub latency: Option<Duration>,
}

impl SimSpec {
    /// Parses `FILE[?key=value&…]`.
    pub fn parse(text: &str) -> Result<SimSpec, TransportError> {
        let (path, query) = match text.rsplit_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (text, None),
        };
        if path.is_empty() {
            return Err(TransportError::Spec(
                "sim: needs a file, as in --transport sim:token.json".into(),
            ));
        }
        let mut spec = SimSpec {
            path: PathBuf::from(path),
            ..SimSpec::default()
        };
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = || {
                value.parse::<u64>().map_err(|_| {
                    TransportError::Spec(format!("sim option {key}: '{value}' is not a number"))
                })
            };
            match key {
                "family" => spec.family = Some(value.parse().map_err(TransportError::Spec)?),
                "serial" => spec.serial = Some(value.to_owned()),
                "drop-after" => spec.fault = Some(Fault::DropAfter(number()? as usize)),
                "cut-after" => spec.fault = Some(Fault::CutAfter(number()? as usize)),
                "latency-ms" => spec.latency = Some(Duration::from_millis(number()?)),
                _ => {
                    return Err(TransportError::Spec(format!(
                        "unknown sim option '{key}': use family, serial, drop-after, cut-after or latency-ms"
                    )));
                }
            }
        }
        Ok(spec)
    }
}

/// Opens a transport from its spec (see the module documentation).
pub fn open(spec: &str) -> Result<Box<dyn Transport>, TransportError> {
    let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
    match kind {
        "auto" if rest.is_empty() => open_auto(),
        "sim" => {
            let sim = SimSpec::parse(rest)?;
            let transport = SimTransport::open_file(&sim.path, sim.family, sim.serial.as_deref())?;
            Ok(wrap(Box::new(transport), &sim))
        }
        "exec" => {
            if rest.trim().is_empty() {
                return Err(TransportError::Spec(
                    "exec: needs a command, as in --transport 'exec:ssh host bridge'".into(),
                ));
            }
            Ok(Box::new(ExecTransport::spawn(rest)?))
        }
        #[cfg(feature = "usb")]
        "usb" => Ok(Box::new(usb::UsbTransport::open(
            Some(rest).filter(|s| !s.is_empty()),
        )?)),
        #[cfg(feature = "pcsc")]
        "pcsc" => Ok(Box::new(pcsc::PcscTransport::open(
            Some(rest).filter(|s| !s.is_empty()),
        )?)),
        #[cfg(not(feature = "pcsc"))]
        "pcsc" => Err(TransportError::Spec(
            "this oathdesk was built without PC/SC (cargo feature 'pcsc', on by default)".into(),
        )),
        _ => Err(TransportError::Spec(format!(
            "unknown transport '{spec}': use {}",
            available()
        ))),
    }
}

fn wrap(transport: Box<dyn Transport>, sim: &SimSpec) -> Box<dyn Transport> {
    let transport: Box<dyn Transport> = match sim.latency {
        Some(latency) => Box::new(SlowTransport::new(transport, latency)),
        None => transport,
    };
    match sim.fault {
        Some(fault) => Box::new(FaultyTransport::new(transport, fault)),
        None => transport,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_specs() {
        let spec = SimSpec::parse("t.json?family=single&cut-after=7&latency-ms=5").unwrap();
        assert_eq!(spec.path, PathBuf::from("t.json"));
        assert_eq!(spec.family, Some(Family::SingleProfile));
        assert_eq!(spec.fault, Some(Fault::CutAfter(7)));
        assert_eq!(spec.latency, Some(Duration::from_millis(5)));
        assert!(SimSpec::parse("t.json?colour=red").is_err());
        assert!(SimSpec::parse("").is_err());
        assert!(open("bluetooth:x").is_err());
    }
}

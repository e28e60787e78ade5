//! PC/SC through the system's smart-card stack: pcscd on Linux and the BSDs
//! (loaded at run time, see `sys`), WinSCard on Windows, PCSC.framework on
//! macOS. On Windows and macOS the system owns the Molto-2's CCID interface,
//! so this is the way to reach it there; on Linux too whenever pcscd runs.
//!
//! Reader choice: see [`select`] — `pcsc:NAME` tries the readers whose name
//! contains NAME, plain `pcsc` the one reader holding a Token2 token.
//!
//! One connection is one programming session inside
//! `SCardBeginTransaction`…`SCardEndTransaction`: another program polling the
//! token (the vendor GUI polls every 2 s) cannot take the challenge between
//! ours and its answer, which would cost an authentication attempt. The
//! transaction ends and the card is released with `LEAVE_CARD`.

pub mod select;
mod sys;

use std::ffi::CString;

use self::select::Probe;
use self::sys::{Card, Code, Context};
use super::{Transport, TransportError};
use crate::hex;
use crate::molto2;
use crate::params::Family;

/// A card in a PC/SC reader, connected in shared mode inside a transaction.
pub struct PcscTransport {
    // Field order is drop order: the card (end the transaction, disconnect)
    // before its context.
    card: Card,
    _context: Context,
    reader: String,
    atr: Vec<u8>,
    family: Option<Family>,
}

fn context() -> Result<Context, TransportError> {
    let api = sys::api().map_err(TransportError::NotFound)?;
    Context::establish(api).map_err(|code| match code {
        Code::NO_SERVICE | Code::SERVICE_STOPPED => TransportError::NotFound(
            "the PC/SC service is not running: start it (Linux: sudo systemctl start pcscd.socket), or use \
             --transport usb"
                .into(),
        ),
        other => TransportError::Io(format!("PC/SC: {other}")),
    })
}

/// The names of the PC/SC readers; none when PC/SC is not installed or not
/// running (`device list` then shows the other transports and says why).
pub fn readers() -> Result<Vec<String>, TransportError> {
    let context = context()?;
    context
        .readers()
        .map_err(|e| TransportError::Io(format!("PC/SC cannot list its readers: {e}")))
}

/// A connected card inside its transaction, and what it answered.
struct Probed {
    card: Card,
    atr: Vec<u8>,
    probe: Probe,
}

fn probe(context: &Context, reader: &str) -> Result<Probed, Probe> {
    let c_name = CString::new(reader)
        .map_err(|_| Probe::Other("the reader name holds a NUL byte".into()))?;
    let mut card = context.connect(&c_name).map_err(|code| match code {
        Code::NO_SMARTCARD | Code::REMOVED_CARD | Code::UNPOWERED_CARD => {
            Probe::NoCard("no card (switch the token on and hold it on the reader)".into())
        }
        Code::SHARING_VIOLATION => {
            Probe::NoCard("held exclusively by another program (close the vendor tool)".into())
        }
        Code::UNRESPONSIVE_CARD => Probe::NoCard(
            "the card does not answer (a Molto-2 that was just plugged in needs 1–2 minutes)"
                .into(),
        ),
        other => Probe::NoCard(other.to_string()),
    })?;
    card.begin_transaction()
        .map_err(|code| Probe::NoCard(format!("cannot begin a transaction: {code}")))?;
    let atr = card.atr().unwrap_or_default();
    let answer = card
        .transmit(&molto2::info().to_bytes())
        .map_err(|code| Probe::Other(format!("the info command failed: {code}")))?;
    let probe = match select::identify(reader, &answer) {
        select::Identity::Token2 { family, serial } => Probe::Token2 { family, serial },
        select::Identity::Other(why) => Probe::Other(why),
    };
    Ok(Probed { card, atr, probe })
}

impl PcscTransport {
    /// Connects to the reader holding the token (see [`select`]).
    pub fn open(name: Option<&str>) -> Result<PcscTransport, TransportError> {
        let context = context()?;
        let readers = context
            .readers()
            .map_err(|e| TransportError::Io(format!("PC/SC cannot list its readers: {e}")))?;
        if readers.is_empty() {
            return Err(TransportError::NotFound(
                "PC/SC lists no reader: plug in the Molto-2 or the NFC reader (on Linux an old libccid may need the \
                 Molto-2 added to its Info.plist; --transport usb needs no such edit)"
                    .into(),
            ));
        }
        let order = select::probe_order(&readers, name).map_err(TransportError::NotFound)?;
        let mut probed: Vec<(String, Probe)> = Vec::new();
        let mut connected: Vec<Option<Probed>> = Vec::new();
        for reader in order {
            match probe(&context, &reader) {
                Ok(found) => {
                    probed.push((reader, found.probe.clone()));
                    connected.push(Some(found));
                }
                Err(probe) => {
                    probed.push((reader, probe));
                    connected.push(None);
                }
            }
        }
        let index = match select::choose(&probed) {
            Ok(index) => index,
            // A reader the user named holds a card that did not answer as a
            // Token2 token: theirs to choose; the protocol layer says more.
            Err(_) if name.is_some() && connected.iter().any(Option::is_some) => {
                connected.iter().position(Option::is_some).unwrap_or(0)
            }
            Err(why)
                if probed
                    .iter()
                    .any(|(_, p)| matches!(p, Probe::Token2 { .. })) =>
            {
                return Err(TransportError::Spec(why));
            }
            Err(why) => return Err(TransportError::NotFound(why)),
        };
        let found = connected[index]
            .take()
            .expect("a chosen reader is connected");
        // The other probed cards are released (their transactions ended) here.
        drop(connected);
        let family = match &found.probe {
            Probe::Token2 { family, .. } => Some(*family),
            _ => None,
        };
        Ok(PcscTransport {
            card: found.card,
            _context: context,
            reader: probed.swap_remove(index).0,
            atr: found.atr,
            family,
        })
    }

    /// The card's answer to reset.
    pub fn atr(&self) -> &[u8] {
        &self.atr
    }
}

impl Transport for PcscTransport {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.card.transmit(command).map_err(|code| {
            if code.is_lost() {
                TransportError::Lost(format!("'{}': {code}", self.reader))
            } else {
                TransportError::Io(format!("PC/SC '{}': {code}", self.reader))
            }
        })
    }

    fn describe(&self) -> String {
        format!(
            "PC/SC reader '{}' (ATR {})",
            self.reader,
            hex::encode(&self.atr)
        )
    }

    fn family_hint(&self) -> Option<Family> {
        self.family
    }
}

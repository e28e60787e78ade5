//! PC/SC through the system's smart-card stack (feature `pcsc`): pcscd and
//! libccid on Linux (`libpcsclite-dev` to build), the built-in stacks on
//! Windows and macOS. For readers the `usb` transport cannot drive (T=1
//! TPDU readers) and for machines where pcscd must keep the token.
//!
//! Reader choice: `pcsc:NAME` takes the first reader whose name contains
//! NAME (case-insensitive); plain `pcsc` the first reader that names the
//! Molto-2 (`molto`, not the `TOKEN2` brand — Token2's FIDO keys show up as
//! readers too), else the first reader with a card.

use std::ffi::CString;

use super::{Transport, TransportError};
use crate::params::Family;

/// A card in a PC/SC reader, connected in shared mode (any protocol).
pub struct PcscTransport {
    reader: String,
    card: pcsc::Card,
    family: Option<Family>,
}

fn context() -> Result<pcsc::Context, TransportError> {
    pcsc::Context::establish(pcsc::Scope::User).map_err(|e| match e {
        pcsc::Error::NoService => TransportError::NotFound(
            "the PC/SC service is not running (on Linux: sudo systemctl start pcscd), or use --transport usb"
                .into(),
        ),
        other => TransportError::Io(format!("PC/SC: {other}")),
    })
}

/// The names of the PC/SC readers.
pub fn readers() -> Result<Vec<String>, TransportError> {
    let context = match context() {
        Ok(context) => context,
        // No service, no readers: `device list` shows the other transports.
        Err(TransportError::NotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    match context.list_readers_owned() {
        Ok(names) => Ok(names
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect()),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(TransportError::Io(format!("PC/SC: {e}"))),
    }
}

impl PcscTransport {
    /// Connects to the reader `name` matches (see the module documentation).
    pub fn open(name: Option<&str>) -> Result<PcscTransport, TransportError> {
        let context = context()?;
        let names = readers()?;
        if names.is_empty() {
            return Err(TransportError::NotFound(
                "PC/SC lists no reader: plug in the Molto-2 or the NFC reader (on Linux an old libccid may need the \
                 Molto-2 added to its Info.plist; --transport usb needs no such edit)"
                    .into(),
            ));
        }
        let contains =
            |reader: &str, part: &str| reader.to_lowercase().contains(&part.to_lowercase());
        let chosen: Vec<&String> = match name {
            Some(part) => names.iter().filter(|r| contains(r, part)).collect(),
            None => {
                let molto: Vec<&String> = names.iter().filter(|r| contains(r, "molto")).collect();
                if molto.is_empty() {
                    names.iter().collect()
                } else {
                    molto
                }
            }
        };
        let mut last_error = None;
        for reader in chosen {
            let c_name = CString::new(reader.as_str())
                .map_err(|_| TransportError::Io("a reader name holds a NUL byte".into()))?;
            match context.connect(&c_name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
                Ok(card) => {
                    return Ok(PcscTransport {
                        family: Some(if contains(reader, "molto") {
                            Family::Molto2
                        } else {
                            Family::SingleProfile
                        })
                        .filter(|_| name.is_none() || contains(reader, "molto")),
                        reader: reader.clone(),
                        card,
                    });
                }
                Err(e) => last_error = Some((reader.clone(), e)),
            }
        }
        Err(match last_error {
            Some((reader, pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard)) => {
                TransportError::NotFound(format!(
                    "no card on '{reader}': switch the token on and hold it on the reader"
                ))
            }
            Some((reader, pcsc::Error::SharingViolation)) => TransportError::Busy(format!(
                "'{reader}' is held exclusively by another program: close the vendor tool"
            )),
            Some((reader, e)) => TransportError::Io(format!("PC/SC '{reader}': {e}")),
            None => TransportError::NotFound(format!(
                "no PC/SC reader matches '{}'; readers: {}",
                name.unwrap_or_default(),
                names.join(", ")
            )),
        })
    }
}

impl Transport for PcscTransport {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut buffer = [0u8; pcsc::MAX_BUFFER_SIZE];
        match self.card.transmit(command, &mut buffer) {
            Ok(response) => Ok(response.to_vec()),
            Err(
                e @ (pcsc::Error::RemovedCard | pcsc::Error::ResetCard | pcsc::Error::NoSmartcard),
            ) => Err(TransportError::Lost(format!("'{}': {e}", self.reader))),
            Err(e) => Err(TransportError::Io(format!("PC/SC '{}': {e}", self.reader))),
        }
    }

    fn describe(&self) -> String {
        format!("PC/SC reader '{}'", self.reader)
    }

    fn family_hint(&self) -> Option<Family> {
        self.family
    }
}

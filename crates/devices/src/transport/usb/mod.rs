//! Direct USB CCID with `nusb`: no pcscd, no libccid `Info.plist` edit.
//!
//! oathdesk claims the token's CCID interface itself and speaks the few CCID
//! messages a short-APDU exchange needs (USB CCID 1.1 §6): power the card
//! on, `PC_to_RDR_XfrBlock` per APDU, read `RDR_to_PC_DataBlock` (waiting
//! through time extensions), power off at the end. The framing is pure
//! ([`ccid`]) and tested without hardware; only [`UsbTransport`] touches USB.
//!
//! Found devices: Token2's only — the Molto-2 by its USB id `349E:0300`
//! (Token2 confirmed this product id is the Molto-2 only) and Token2's NFC
//! reader `349E:0430`; never Token2's FIDO keys. Another CCID reader (an
//! ACR122U for single-profile tokens) only when the user names it,
//! `usb:072F:2200`, and then only if no kernel driver holds it: oathdesk
//! never detaches another device's driver.

use std::time::Duration;

use nusb::MaybeFuture;
use nusb::transfer::{Buffer, Bulk, In, Out};

use super::{Transport, TransportError};
use crate::params::Family;

/// Token2's USB vendor id.
pub const TOKEN2_VID: u16 = 0x349E;
/// The Molto-2's product id.
pub const MOLTO2_PID: u16 = 0x0300;
/// The USB class of smart-card (CCID) interfaces.
pub const CCID_CLASS: u8 = 0x0B;

/// Token2's NFC reader (for single-profile tokens).
pub const TOKEN2_NFC_READER_PID: u16 = 0x0430;

/// How long one transfer may take before the token counts as gone.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one command may take in all, time extensions included.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

pub mod ccid;

/// What a USB device is to oathdesk: a Token2 device (and its family), or a
/// reader the user named by `VID:PID`; `None` for everything else.
pub fn classify(vid: u16, pid: u16, named: Option<(u16, u16)>) -> Option<Family> {
    match (vid, pid) {
        (TOKEN2_VID, MOLTO2_PID) => Some(Family::Molto2),
        (TOKEN2_VID, TOKEN2_NFC_READER_PID) => Some(Family::SingleProfile),
        // Token2's FIDO keys expose CCID too; they are not TOTP tokens.
        (TOKEN2_VID, _) => None,
        ids if Some(ids) == named => Some(Family::SingleProfile),
        _ => None,
    }
}

/// `usb:N` (an index from `device list`) or `usb:VID:PID` (a reader the
/// user names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selector {
    Index(usize),
    Named(u16, u16),
}

impl Selector {
    pub fn parse(text: Option<&str>) -> Result<Selector, TransportError> {
        let Some(text) = text else {
            return Ok(Selector::Index(0));
        };
        if let Some((vid, pid)) = text.split_once(':') {
            let hex = |part: &str| u16::from_str_radix(part, 16).ok();
            return match (hex(vid), hex(pid)) {
                (Some(vid), Some(pid)) => Ok(Selector::Named(vid, pid)),
                _ => Err(TransportError::Spec(format!(
                    "usb:{text}: name a reader by its USB id in hex, as in usb:072F:2200 (lsusb shows it)"
                ))),
            };
        }
        text.parse().map(Selector::Index).map_err(|_| {
            TransportError::Spec(format!(
                "usb:{text}: give the number 'oathdesk device list' shows (usb:0, usb:1…) or a reader's USB id \
                 (usb:072F:2200)"
            ))
        })
    }
}

/// A USB device that speaks CCID.
#[derive(Clone, Debug)]
pub struct Found {
    pub info: nusb::DeviceInfo,
    pub interface: u8,
    pub family: Family,
    /// A Token2 device (its driver may be detached) or a named reader.
    pub token2: bool,
}

impl Found {
    /// `349E:0300 bus 1 address 7` and the product name.
    pub fn describe(&self) -> String {
        format!(
            "USB {:04X}:{:04X} bus {} address {}{}",
            self.info.vendor_id(),
            self.info.product_id(),
            self.info.busnum(),
            self.info.device_address(),
            self.info
                .product_string()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        )
    }
}

fn io(what: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::Io(format!("{what}: {e}"))
}

/// The Token2 CCID devices, Molto-2s first; with `named`, that reader too.
pub fn find_with(named: Option<(u16, u16)>) -> Result<Vec<Found>, TransportError> {
    let devices = match nusb::list_devices().wait() {
        Ok(devices) => devices,
        // No USB subsystem at all (a container): nothing to find.
        Err(e) if e.kind() == nusb::ErrorKind::NotFound || e.os_error() == Some(2) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(io("cannot list USB devices", e)),
    };
    let mut found: Vec<Found> = devices
        .filter_map(|info| {
            let family = classify(info.vendor_id(), info.product_id(), named)?;
            let interface = info
                .interfaces()
                .find(|i| i.class() == CCID_CLASS)?
                .interface_number();
            Some(Found {
                token2: info.vendor_id() == TOKEN2_VID,
                info,
                interface,
                family,
            })
        })
        .collect();
    found.sort_by_key(|f| f.family != Family::Molto2);
    Ok(found)
}

/// The Token2 CCID devices (`device list`).
pub fn find() -> Result<Vec<Found>, TransportError> {
    find_with(None)
}

/// A token (or reader) on USB, claimed for this session.
pub struct UsbTransport {
    found: Found,
    _interface: nusb::Interface,
    out: nusb::Endpoint<Bulk, Out>,
    input: nusb::Endpoint<Bulk, In>,
    seq: ccid::Sequence,
    atr: Vec<u8>,
    /// A TPDU-level reader (short APDUs go as T=0 TPDUs).
    tpdu: bool,
}

impl UsbTransport {
    /// Opens `usb:N` (the N-th Token2 device of [`find`]), `usb:VID:PID` (a
    /// reader the user names), or the first Token2 device.
    pub fn open(selector: Option<&str>) -> Result<UsbTransport, TransportError> {
        let selector = Selector::parse(selector)?;
        let named = match selector {
            Selector::Named(vid, pid) => Some((vid, pid)),
            Selector::Index(_) => None,
        };
        let mut all = find_with(named)?;
        if let Selector::Named(vid, pid) = selector {
            all.retain(|f| f.info.vendor_id() == vid && f.info.product_id() == pid);
            if all.is_empty() {
                return Err(TransportError::NotFound(format!(
                    "no CCID device {vid:04X}:{pid:04X} on USB"
                )));
            }
            return UsbTransport::claim(all.swap_remove(0));
        }
        let Selector::Index(index) = selector else {
            unreachable!("named readers returned above")
        };
        if all.is_empty() {
            return Err(TransportError::NotFound(
                "no Token2 device on USB (Molto-2 349E:0300): plug the token into a direct USB port (hubs and docks \
                 cause time-outs); its card interface can take a minute or two to come up. Another CCID reader: \
                 name it, as in --transport usb:072F:2200"
                    .into(),
            ));
        }
        if index >= all.len() {
            return Err(TransportError::NotFound(format!(
                "usb:{index}: only {} Token2 device(s) found",
                all.len()
            )));
        }
        UsbTransport::claim(all.swap_remove(index))
    }

    fn claim(found: Found) -> Result<UsbTransport, TransportError> {
        let name = found.describe();
        let device = found.info.open().wait().map_err(|e| held(&name, &e))?;
        // Only a Token2 device's kernel driver is detached; another reader
        // stays with whoever holds it.
        let interface = if found.token2 {
            device.detach_and_claim_interface(found.interface).wait()
        } else {
            device.claim_interface(found.interface).wait()
        }
        .map_err(|e| held(&name, &e))?;
        let descriptor = interface
            .descriptor()
            .ok_or_else(|| io(&name, "the CCID interface has no descriptor"))?;
        let level = ccid::features(descriptor.as_bytes())
            .map(ccid::level)
            .unwrap_or(ccid::Level::Apdu);
        if level == ccid::Level::Character {
            return Err(TransportError::Spec(format!(
                "{name} is a character-level reader (the host would have to run T=0/T=1 byte by byte), which \
                 oathdesk does not drive directly: use --transport pcsc"
            )));
        }
        let (mut bulk_in, mut bulk_out) = (None, None);
        for endpoint in descriptor.endpoints() {
            if endpoint.transfer_type() != nusb::descriptors::TransferType::Bulk {
                continue;
            }
            match endpoint.direction() {
                nusb::transfer::Direction::In => bulk_in = Some(endpoint.address()),
                nusb::transfer::Direction::Out => bulk_out = Some(endpoint.address()),
            }
        }
        let (Some(bulk_in), Some(bulk_out)) = (bulk_in, bulk_out) else {
            return Err(io(&name, "the CCID interface has no bulk endpoints"));
        };
        let out = interface
            .endpoint::<Bulk, Out>(bulk_out)
            .map_err(|e| held(&name, &e))?;
        let input = interface
            .endpoint::<Bulk, In>(bulk_in)
            .map_err(|e| held(&name, &e))?;
        let molto2 = found.family == Family::Molto2;
        let mut transport = UsbTransport {
            found,
            _interface: interface,
            out,
            input,
            seq: ccid::Sequence::random(),
            atr: Vec::new(),
            tpdu: matches!(level, ccid::Level::Tpdu { .. }),
        };
        transport.atr = match transport.exchange(ccid::PC_TO_RDR_ICC_POWER_ON, ccid::power_on)? {
            ccid::Reply::Data(atr, _) => atr,
            ccid::Reply::NoCard => {
                return Err(TransportError::NotFound(format!(
                    "{name}: no card: switch the token on and hold it on the reader"
                )));
            }
            ccid::Reply::Failed(code) => {
                return Err(TransportError::NotFound(format!(
                    "{name}: {}",
                    ccid::power_on_failure(code, molto2)
                )));
            }
            ccid::Reply::TimeExtension => unreachable!("exchange waits through time extensions"),
        };
        if let ccid::Level::Tpdu {
            needs_parameters: true,
        } = level
        {
            let fi_di = ccid::atr_ta1(&transport.atr).unwrap_or(0x11);
            match transport.exchange(ccid::PC_TO_RDR_SET_PARAMETERS, |seq| {
                ccid::set_parameters_t0(seq, fi_di)
            })? {
                ccid::Reply::Data(..) => {}
                other => {
                    return Err(io(
                        &name,
                        format!(
                            "the reader refused T=0 parameters ({other:?}): use --transport pcsc"
                        ),
                    ));
                }
            }
        }
        Ok(transport)
    }

    /// The card's answer to reset.
    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn lost(&self, e: impl std::fmt::Display) -> TransportError {
        TransportError::Lost(format!("{}: {e}", self.found.describe()))
    }

    /// After a time-out: cancel what is pending and clear a halt, so that
    /// the next command (or the next session) starts on clean endpoints.
    fn recover(&mut self) {
        self.input.cancel_all();
        self.out.cancel_all();
        let _ = self.input.clear_halt().wait();
        let _ = self.out.clear_halt().wait();
    }

    /// Sends one message and reads its reply, through time extensions and
    /// chained parts, within [`COMMAND_DEADLINE`].
    fn exchange(
        &mut self,
        request: u8,
        build: impl Fn(u8) -> Vec<u8>,
    ) -> Result<ccid::Reply, TransportError> {
        let deadline = std::time::Instant::now() + COMMAND_DEADLINE;
        let mut seq = self.seq.advance();
        self.send(&build(seq))?;
        let mut chained: Vec<u8> = Vec::new();
        loop {
            match self.receive(request, seq, deadline)? {
                ccid::Reply::Data(data, ccid::Chain::More) => {
                    chained.extend_from_slice(&data);
                    seq = self.seq.advance();
                    self.send(&ccid::continue_chain(seq))?;
                }
                ccid::Reply::Data(data, ccid::Chain::Last) => {
                    chained.extend_from_slice(&data);
                    return Ok(ccid::Reply::Data(chained, ccid::Chain::Last));
                }
                other => return Ok(other),
            }
        }
    }

    fn send(&mut self, message: &[u8]) -> Result<(), TransportError> {
        let mut buffer = Buffer::new(message.len());
        buffer.extend_from_slice(message);
        let sent = self
            .out
            .transfer_blocking(buffer, TRANSFER_TIMEOUT)
            .into_result();
        if let Err(e) = sent {
            self.recover();
            return Err(self.lost(e));
        }
        Ok(())
    }

    /// One reply (a time extension is waited through, up to `deadline`).
    fn receive(
        &mut self,
        request: u8,
        seq: u8,
        deadline: std::time::Instant,
    ) -> Result<ccid::Reply, TransportError> {
        let packet = self.input.max_packet_size().max(64);
        let mut received = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                self.recover();
                return Err(self.lost(format!(
                    "no answer within {} s (time extensions included)",
                    COMMAND_DEADLINE.as_secs()
                )));
            }
            let completion = self
                .input
                .transfer_blocking(Buffer::new(packet * 8), TRANSFER_TIMEOUT.min(left));
            let data = match completion.into_result() {
                Ok(data) => data,
                Err(e) => {
                    self.recover();
                    return Err(self.lost(e));
                }
            };
            received.extend_from_slice(&data);
            match ccid::parse_reply(&received, request, seq) {
                Ok(ccid::Reply::TimeExtension) => received.clear(),
                Ok(reply) => return Ok(reply),
                Err(ccid::ReplyError::Incomplete { .. }) => {}
                // A late reply to an earlier, timed-out message: drop it.
                Err(ccid::ReplyError::Sequence { .. }) => received.clear(),
                Err(e) => {
                    self.recover();
                    return Err(io(
                        &self.found.describe(),
                        format!("the reader's answer does not fit the request ({e:?})"),
                    ));
                }
            }
        }
    }
}

/// Explains an open or claim failure: most often another program holds the
/// device.
fn held(name: &str, e: &nusb::Error) -> TransportError {
    match e.kind() {
        nusb::ErrorKind::Busy => TransportError::Busy(format!(
            "{name} is held by another program — usually pcscd: use it with --transport pcsc (or stop it with \
             'sudo systemctl stop pcscd.socket pcscd'), or close the vendor's tool"
        )),
        nusb::ErrorKind::PermissionDenied => TransportError::Busy(format!(
            "no permission to open {name}: add a udev rule giving your user access to USB 349E:0300 (see docs/src/devices.md), \
             or run as root"
        )),
        nusb::ErrorKind::Disconnected => TransportError::Lost(format!("{name} was unplugged")),
        _ => io(name, e),
    }
}

impl Transport for UsbTransport {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let apdu = command.to_vec();
        match self.exchange(ccid::PC_TO_RDR_XFR_BLOCK, |seq| ccid::xfr_block(seq, &apdu))? {
            ccid::Reply::Data(response, _) => Ok(response),
            ccid::Reply::NoCard => Err(self.lost("the card is gone")),
            ccid::Reply::Failed(code) => Err(self.lost(format!(
                "the reader failed the command (CCID error {code:02X})"
            ))),
            ccid::Reply::TimeExtension => unreachable!("exchange waits through time extensions"),
        }
    }

    fn describe(&self) -> String {
        let mut text = self.found.describe();
        if self.tpdu {
            text.push_str(" [TPDU reader: T=0 only; use --transport pcsc for T=1]");
        }
        text
    }

    fn family_hint(&self) -> Option<Family> {
        Some(self.found.family)
    }
}

impl Drop for UsbTransport {
    fn drop(&mut self) {
        let _ = self.exchange(ccid::PC_TO_RDR_ICC_POWER_OFF, ccid::power_off);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_token2_devices_unless_a_reader_is_named() {
        assert_eq!(classify(TOKEN2_VID, MOLTO2_PID, None), Some(Family::Molto2));
        assert_eq!(
            classify(TOKEN2_VID, TOKEN2_NFC_READER_PID, None),
            Some(Family::SingleProfile)
        );
        // A Token2 FIDO key, a YubiKey, an ACR122U: not offered.
        assert_eq!(classify(TOKEN2_VID, 0x0026, None), None);
        assert_eq!(classify(0x1050, 0x0407, None), None);
        assert_eq!(classify(0x072F, 0x2200, None), None);
        // The ACR122U once the user names it; still never a Token2 FIDO key.
        assert_eq!(
            classify(0x072F, 0x2200, Some((0x072F, 0x2200))),
            Some(Family::SingleProfile)
        );
        assert_eq!(
            classify(TOKEN2_VID, 0x0026, Some((TOKEN2_VID, 0x0026))),
            None
        );
    }

    #[test]
    fn selectors() {
        assert_eq!(Selector::parse(None).unwrap(), Selector::Index(0));
        assert_eq!(Selector::parse(Some("2")).unwrap(), Selector::Index(2));
        assert_eq!(
            Selector::parse(Some("072f:2200")).unwrap(),
            Selector::Named(0x072F, 0x2200)
        );
        assert!(Selector::parse(Some("acr")).is_err());
        assert!(Selector::parse(Some("72F:zz")).is_err());
    }
}

//! Direct USB CCID with `nusb`: no pcscd, no libccid `Info.plist` edit.
//!
//! oathdesk claims the token's CCID interface itself and speaks the few CCID
//! messages a short-APDU exchange needs (USB CCID 1.1 §6): power the card
//! on, `PC_to_RDR_XfrBlock` per APDU, read `RDR_to_PC_DataBlock` (waiting
//! through time extensions), power off at the end. The framing is pure
//! ([`ccid`]) and tested without hardware; only [`UsbTransport`] touches USB.
//!
//! Found devices: the Molto-2 by its USB id `349E:0300` (Token2 confirmed
//! this product id is the Molto-2 only), and any other device with a CCID
//! interface (class `0B`) as a reader — an NFC reader such as the ACR122U
//! for single-profile tokens.

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

/// How long one transfer may take before the token counts as gone.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(15);

/// The CCID messages, as pure functions over bytes.
pub mod ccid {
    pub const PC_TO_RDR_ICC_POWER_ON: u8 = 0x62;
    pub const PC_TO_RDR_ICC_POWER_OFF: u8 = 0x63;
    pub const PC_TO_RDR_XFR_BLOCK: u8 = 0x6F;
    pub const RDR_TO_PC_DATA_BLOCK: u8 = 0x80;
    pub const RDR_TO_PC_SLOT_STATUS: u8 = 0x81;

    /// `dwFeatures` bits of the CCID class descriptor.
    pub const FEATURE_TPDU: u32 = 0x0001_0000;
    pub const FEATURE_SHORT_APDU: u32 = 0x0002_0000;
    pub const FEATURE_EXTENDED_APDU: u32 = 0x0004_0000;

    /// A bulk-out message: 10-byte header and data.
    pub fn message(kind: u8, seq: u8, param: [u8; 3], data: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(10 + data.len());
        bytes.push(kind);
        bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        bytes.push(0); // slot
        bytes.push(seq);
        bytes.extend_from_slice(&param);
        bytes.extend_from_slice(data);
        bytes
    }

    /// Power on with automatic voltage selection.
    pub fn power_on(seq: u8) -> Vec<u8> {
        message(PC_TO_RDR_ICC_POWER_ON, seq, [0, 0, 0], &[])
    }

    pub fn power_off(seq: u8) -> Vec<u8> {
        message(PC_TO_RDR_ICC_POWER_OFF, seq, [0, 0, 0], &[])
    }

    /// An APDU for the card.
    pub fn xfr_block(seq: u8, apdu: &[u8]) -> Vec<u8> {
        message(PC_TO_RDR_XFR_BLOCK, seq, [0, 0, 0], apdu)
    }

    /// A parsed bulk-in message.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Reply {
        /// Data for the host (ATR after power-on, response APDU after XfrBlock).
        Data(Vec<u8>),
        /// The card needs more time: read again.
        TimeExtension,
        /// The reader reports no card in the slot.
        NoCard,
        /// The command failed with this CCID error code.
        Failed(u8),
    }

    /// Why a bulk-in message cannot be read.
    #[derive(Debug, PartialEq, Eq)]
    pub enum ReplyError {
        /// Fewer bytes than the header says: read more.
        Incomplete { needed: usize },
        /// Not a reply to the message with this sequence number.
        Sequence { expected: u8, found: u8 },
        /// An unexpected message type.
        Kind(u8),
        /// A length no short-APDU reply can have (the reader is confused).
        Length(u32),
    }

    /// The longest reply accepted: an extended APDU response and then some.
    pub const MAX_REPLY_DATA: u32 = 65_538;

    /// Parses a reply to the message with sequence `seq`.
    pub fn parse_reply(bytes: &[u8], seq: u8) -> Result<Reply, ReplyError> {
        // The type first: a stray packet is not waited on for its "length".
        match bytes.first() {
            None => return Err(ReplyError::Incomplete { needed: 10 }),
            Some(&(RDR_TO_PC_DATA_BLOCK | RDR_TO_PC_SLOT_STATUS)) => {}
            Some(&kind) => return Err(ReplyError::Kind(kind)),
        }
        if bytes.len() < 10 {
            return Err(ReplyError::Incomplete { needed: 10 });
        }
        let length = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        if length > MAX_REPLY_DATA {
            return Err(ReplyError::Length(length));
        }
        let needed = 10 + length as usize;
        if bytes.len() < needed {
            return Err(ReplyError::Incomplete { needed });
        }
        if bytes[6] != seq {
            return Err(ReplyError::Sequence {
                expected: seq,
                found: bytes[6],
            });
        }
        let status = bytes[7];
        let error = bytes[8];
        match status >> 6 {
            2 => return Ok(Reply::TimeExtension),
            1 => {
                return Ok(if status & 0x03 == 2 {
                    Reply::NoCard
                } else {
                    Reply::Failed(error)
                });
            }
            _ => {}
        }
        Ok(Reply::Data(bytes[10..needed].to_vec()))
    }

    /// `dwFeatures` from an interface's extra descriptors (the CCID class
    /// descriptor, type `21`, 54 bytes, `dwFeatures` at offset 40).
    pub fn features(descriptors: &[u8]) -> Option<u32> {
        let mut rest = descriptors;
        while rest.len() >= 2 {
            let len = usize::from(rest[0]);
            if len < 2 || len > rest.len() {
                return None;
            }
            if rest[1] == 0x21 && len >= 44 {
                return Some(u32::from_le_bytes([rest[40], rest[41], rest[42], rest[43]]));
            }
            rest = &rest[len..];
        }
        None
    }
}

/// A USB device that speaks CCID.
#[derive(Clone, Debug)]
pub struct Found {
    pub info: nusb::DeviceInfo,
    pub interface: u8,
    pub family: Family,
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

/// Every CCID device, Molto-2s first.
pub fn find() -> Result<Vec<Found>, TransportError> {
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
            let interface = info
                .interfaces()
                .find(|i| i.class() == CCID_CLASS)?
                .interface_number();
            let family = if info.vendor_id() == TOKEN2_VID && info.product_id() == MOLTO2_PID {
                Family::Molto2
            } else if info.vendor_id() == TOKEN2_VID {
                // Token2's FIDO keys expose CCID too; they are not TOTP tokens.
                return None;
            } else {
                Family::SingleProfile
            };
            Some(Found {
                info,
                interface,
                family,
            })
        })
        .collect();
    found.sort_by_key(|f| f.family != Family::Molto2);
    Ok(found)
}

/// A token (or reader) on USB, claimed for this session.
pub struct UsbTransport {
    found: Found,
    _interface: nusb::Interface,
    out: nusb::Endpoint<Bulk, Out>,
    input: nusb::Endpoint<Bulk, In>,
    seq: u8,
    atr: Vec<u8>,
    /// A TPDU-level reader (short APDUs go as T=0 TPDUs).
    tpdu: bool,
}

impl UsbTransport {
    /// Opens the `index`-th CCID device of [`find`] (`usb:N`), or the first.
    pub fn open(selector: Option<&str>) -> Result<UsbTransport, TransportError> {
        let index = match selector {
            None => 0,
            Some(text) => text.parse::<usize>().map_err(|_| {
                TransportError::Spec(format!(
                    "usb:{text}: give the number 'oathdesk device list' shows (usb:0, usb:1…)"
                ))
            })?,
        };
        let mut all = find()?;
        if all.is_empty() {
            return Err(TransportError::NotFound(
                "no Molto-2 (USB 349E:0300) and no CCID reader found: plug the token into a direct USB port (hubs \
                 and docks cause time-outs); its card interface can take a minute or two to come up"
                    .into(),
            ));
        }
        if index >= all.len() {
            return Err(TransportError::NotFound(format!(
                "usb:{index}: only {} CCID device(s) found",
                all.len()
            )));
        }
        UsbTransport::claim(all.swap_remove(index))
    }

    fn claim(found: Found) -> Result<UsbTransport, TransportError> {
        let name = found.describe();
        let device = found.info.open().wait().map_err(|e| held(&name, &e))?;
        let interface = device
            .detach_and_claim_interface(found.interface)
            .wait()
            .map_err(|e| held(&name, &e))?;
        let descriptor = interface
            .descriptor()
            .ok_or_else(|| io(&name, "the CCID interface has no descriptor"))?;
        // A TPDU-level reader gets the short APDUs as T=0 TPDUs (the same
        // bytes; the Link answers 61xx/6Cxx). T=1 block framing is left to
        // PC/SC: such a reader is named in the description.
        let tpdu = ccid::features(descriptor.as_bytes()).is_some_and(|features| {
            features & (ccid::FEATURE_SHORT_APDU | ccid::FEATURE_EXTENDED_APDU) == 0
                && features & ccid::FEATURE_TPDU != 0
        });
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
        let mut transport = UsbTransport {
            found,
            _interface: interface,
            out,
            input,
            seq: 0,
            atr: Vec::new(),
            tpdu,
        };
        transport.atr = match transport.exchange(ccid::power_on)? {
            ccid::Reply::Data(atr) => atr,
            ccid::Reply::NoCard => {
                return Err(TransportError::NotFound(format!(
                    "{name}: no card: switch the token on and hold it on the reader"
                )));
            }
            other => return Err(io(&name, format!("power-on failed ({other:?})"))),
        };
        Ok(transport)
    }

    /// The card's answer to reset.
    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn lost(&self, e: impl std::fmt::Display) -> TransportError {
        TransportError::Lost(format!("{}: {e}", self.found.describe()))
    }

    fn exchange(&mut self, build: impl Fn(u8) -> Vec<u8>) -> Result<ccid::Reply, TransportError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let message = build(seq);
        let mut buffer = Buffer::new(message.len());
        buffer.extend_from_slice(&message);
        self.out
            .transfer_blocking(buffer, TRANSFER_TIMEOUT)
            .into_result()
            .map_err(|e| self.lost(e))?;
        let packet = self.input.max_packet_size().max(64);
        let mut received = Vec::new();
        loop {
            let want = packet * 8;
            let completion = self
                .input
                .transfer_blocking(Buffer::new(want), TRANSFER_TIMEOUT);
            let data = completion.into_result().map_err(|e| self.lost(e))?;
            received.extend_from_slice(&data);
            match ccid::parse_reply(&received, seq) {
                Ok(ccid::Reply::TimeExtension) => received.clear(),
                Ok(reply) => return Ok(reply),
                Err(ccid::ReplyError::Incomplete { .. }) => {}
                // A late reply to an earlier, timed-out message: drop it.
                Err(ccid::ReplyError::Sequence { .. }) => received.clear(),
                Err(ccid::ReplyError::Kind(kind)) => {
                    return Err(io(
                        &self.found.describe(),
                        format!("unexpected CCID message {kind:02X}"),
                    ));
                }
                Err(ccid::ReplyError::Length(length)) => {
                    return Err(io(
                        &self.found.describe(),
                        format!("a CCID reply claims {length} bytes"),
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
            "{name} is held by another program — usually pcscd (stop it with 'sudo systemctl stop pcscd.socket \
             pcscd'), or the vendor's tool; or use that stack with --transport pcsc"
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
        match self.exchange(|seq| ccid::xfr_block(seq, &apdu))? {
            ccid::Reply::Data(response) => Ok(response),
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
        let _ = self.exchange(ccid::power_off);
    }
}

#[cfg(test)]
mod tests {
    use super::ccid::*;

    #[test]
    fn messages_and_replies() {
        assert_eq!(power_on(1), [0x62, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(
            xfr_block(2, &[0x80, 0x41, 0, 0, 0]),
            [0x6F, 5, 0, 0, 0, 0, 2, 0, 0, 0, 0x80, 0x41, 0, 0, 0]
        );
        let reply = [0x80, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0x90, 0x00];
        assert_eq!(parse_reply(&reply, 2), Ok(Reply::Data(vec![0x90, 0])));
        assert_eq!(
            parse_reply(&reply[..11], 2),
            Err(ReplyError::Incomplete { needed: 12 })
        );
        assert_eq!(
            parse_reply(&reply, 3),
            Err(ReplyError::Sequence {
                expected: 3,
                found: 2
            })
        );
        let extension = [0x80, 0, 0, 0, 0, 0, 2, 0x80, 1, 0];
        assert_eq!(parse_reply(&extension, 2), Ok(Reply::TimeExtension));
        let no_card = [0x81, 0, 0, 0, 0, 0, 2, 0x42, 0xFE, 0];
        assert_eq!(parse_reply(&no_card, 2), Ok(Reply::NoCard));
        let failed = [0x80, 0, 0, 0, 0, 0, 2, 0x40, 0xFB, 0];
        assert_eq!(parse_reply(&failed, 2), Ok(Reply::Failed(0xFB)));
        assert_eq!(parse_reply(&[0x99; 10], 0), Err(ReplyError::Kind(0x99)));
        assert_eq!(
            parse_reply(&[0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0], 0),
            Err(ReplyError::Length(u32::MAX))
        );
    }

    #[test]
    fn features_from_the_class_descriptor() {
        let mut descriptors = vec![9, 4, 0, 0, 3, 0x0B, 0, 0, 0];
        let mut class = vec![0u8; 54];
        class[0] = 54;
        class[1] = 0x21;
        class[40..44].copy_from_slice(&0x0004_0840u32.to_le_bytes());
        descriptors.extend_from_slice(&class);
        assert_eq!(features(&descriptors), Some(0x0004_0840));
        assert_eq!(features(&[9, 4, 0]), None);
        assert_eq!(features(&[0, 4]), None);
    }
}

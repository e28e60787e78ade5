//! A simulated token as the card of vsmartcard's virtual reader (`vpcd`), so
//! that the real PC/SC path — pcscd, its reader driver, `SCardTransmit`,
//! transactions, several readers — runs against the simulators in tests and
//! on a machine without a token.
//!
//! The vpcd protocol: the card side connects over TCP to the reader driver
//! (`127.0.0.1:35963` by default, one port per reader in
//! `/etc/reader.conf.d/vpcd`); each message either way is a 2-byte big-endian
//! length and a payload. From the reader, a 1-byte payload is a control
//! message (00 power off, 01 power on, 02 reset, 04 send the ATR); any other
//! payload is a command APDU to answer. Connecting inserts the card,
//! closing the connection removes it.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

use crate::transport::{Transport, TransportError};

/// The ATR our simulated tokens present (direct convention, T=1, no
/// historical bytes): no published ATR identifies a Token2 token, so PC/SC
/// selection never relies on it.
pub const SIM_ATR: [u8; 6] = [0x3B, 0x80, 0x80, 0x01, 0x01, 0x01];

/// What the reader asks of the card.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    PowerOff,
    PowerOn,
    Reset,
    Atr,
    Apdu(Vec<u8>),
}

/// Reads one message's payload.
pub fn parse_request(payload: &[u8]) -> Request {
    match payload {
        [0x00] => Request::PowerOff,
        [0x01] => Request::PowerOn,
        [0x02] => Request::Reset,
        [0x04] => Request::Atr,
        apdu => Request::Apdu(apdu.to_vec()),
    }
}

/// One message: length (big-endian u16) and payload.
pub fn frame(payload: &[u8]) -> io::Result<Vec<u8>> {
    let len = u16::try_from(payload.len()).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, "vpcd message over 65535 bytes")
    })?;
    let mut bytes = len.to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    Ok(bytes)
}

fn read_message(stream: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        // The reader driver went away (pcscd stopped): the card is out.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut payload)?;
    Ok(Some(payload))
}

/// A card to put in the reader: `power_on` makes it anew (a power cycle
/// forgets a challenge and an authentication, as a real token does).
pub trait Card {
    fn power_on(&mut self) -> Result<Box<dyn Transport + Send>, TransportError>;
}

impl<F> Card for F
where
    F: FnMut() -> Result<Box<dyn Transport + Send>, TransportError>,
{
    fn power_on(&mut self) -> Result<Box<dyn Transport + Send>, TransportError> {
        self()
    }
}

/// Answers one reader over `stream` until it hangs up.
pub fn serve(mut stream: TcpStream, card: &mut dyn Card, atr: &[u8]) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut powered: Option<Box<dyn Transport + Send>> = None;
    let fail = |e: TransportError| io::Error::other(e.to_string());
    while let Some(payload) = read_message(&mut stream)? {
        match parse_request(&payload) {
            Request::PowerOff => powered = None,
            Request::PowerOn | Request::Reset => powered = Some(card.power_on().map_err(fail)?),
            Request::Atr => stream.write_all(&frame(atr)?)?,
            Request::Apdu(command) => {
                if powered.is_none() {
                    powered = Some(card.power_on().map_err(fail)?);
                }
                let transport = powered.as_mut().expect("powered above");
                let response = match transport.transmit(&command) {
                    Ok(response) => response,
                    // A simulator fault: the reader sees a mute card.
                    Err(e) => return Err(fail(e)),
                };
                stream.write_all(&frame(&response)?)?;
            }
        }
    }
    Ok(())
}

/// Connects to the reader driver at `address` (retrying while pcscd starts)
/// and serves `card` until the reader hangs up.
pub fn connect_and_serve(
    address: impl ToSocketAddrs + Clone,
    card: &mut dyn Card,
    atr: &[u8],
    attempts: u32,
) -> io::Result<()> {
    let mut last = None;
    for _ in 0..attempts.max(1) {
        match TcpStream::connect(address.clone()) {
            Ok(stream) => return serve(stream, card, atr),
            Err(e) => {
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no attempt made")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_and_apdus() {
        assert_eq!(parse_request(&[0]), Request::PowerOff);
        assert_eq!(parse_request(&[1]), Request::PowerOn);
        assert_eq!(parse_request(&[2]), Request::Reset);
        assert_eq!(parse_request(&[4]), Request::Atr);
        assert_eq!(
            parse_request(&[0x80, 0x41, 0, 0, 0]),
            Request::Apdu(vec![0x80, 0x41, 0, 0, 0])
        );
        assert_eq!(frame(&[0x90, 0x00]).unwrap(), [0, 2, 0x90, 0x00]);
        assert_eq!(frame(&[0u8; 300]).unwrap()[..2], [0x01, 0x2C]);
        assert!(frame(&vec![0u8; 70_000]).is_err());
    }
}

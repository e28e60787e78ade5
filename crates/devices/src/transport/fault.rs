//! Transports that misbehave on purpose: a cable pulled after N APDUs, and a
//! fixed latency per APDU (the provisioning benchmark).

use std::time::Duration;

use super::{Transport, TransportError};
use crate::params::Family;

/// When the connection breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// After N APDUs went through, the next one never reaches the token.
    DropAfter(usize),
    /// After N APDUs went through, the next one reaches the token and is
    /// carried out, but its answer is lost: the host cannot know.
    CutAfter(usize),
}

/// A transport whose connection breaks as [`Fault`] says, and stays broken.
pub struct FaultyTransport<T> {
    inner: T,
    fault: Fault,
    sent: usize,
    broken: bool,
}

impl<T: Transport> FaultyTransport<T> {
    pub fn new(inner: T, fault: Fault) -> FaultyTransport<T> {
        FaultyTransport {
            inner,
            fault,
            sent: 0,
            broken: false,
        }
    }

    /// The transport inside (to look at a simulator after the fault).
    pub fn inner(&self) -> &T {
        &self.inner
    }

    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: Transport> Transport for FaultyTransport<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let lost = || TransportError::Lost("the USB device is gone (injected fault)".into());
        if self.broken {
            return Err(lost());
        }
        match self.fault {
            Fault::DropAfter(n) if self.sent >= n => {
                self.broken = true;
                Err(lost())
            }
            Fault::CutAfter(n) if self.sent >= n => {
                self.broken = true;
                let _ = self.inner.transmit(command);
                Err(lost())
            }
            _ => {
                self.sent += 1;
                self.inner.transmit(command)
            }
        }
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn family_hint(&self) -> Option<Family> {
        self.inner.family_hint()
    }
}

/// A transport that takes `latency` longer for every APDU.
pub struct SlowTransport<T> {
    inner: T,
    latency: Duration,
}

impl<T: Transport> SlowTransport<T> {
    pub fn new(inner: T, latency: Duration) -> SlowTransport<T> {
        SlowTransport { inner, latency }
    }
}

impl<T: Transport> Transport for SlowTransport<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        std::thread::sleep(self.latency);
        self.inner.transmit(command)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn family_hint(&self) -> Option<Family> {
        self.inner.family_hint()
    }
}

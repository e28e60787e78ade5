//! The simulators as a transport: `sim:FILE`, or one held in memory.

use std::path::{Path, PathBuf};

use super::{Transport, TransportError};
use crate::params::Family;
use crate::sim::Simulator;

/// Where a simulated token's time comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The host's clock, as a real token's RTC would run beside it.
    System,
    /// A fixed Unix time (tests).
    Fixed(u64),
}

impl Clock {
    pub fn now(self) -> u64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            Clock::Fixed(time) => time,
        }
    }
}

/// A simulated token behind the [`Transport`] trait.
///
/// A file-backed one is read when opened (a power-up: no challenge, not
/// authenticated) and written after every APDU, so the file is always what
/// the token would hold if the cable were pulled right then.
#[derive(Debug)]
pub struct SimTransport {
    pub simulator: Simulator,
    path: Option<PathBuf>,
    pub clock: Clock,
}

impl SimTransport {
    /// A token held in memory.
    pub fn memory(simulator: Simulator, clock: Clock) -> SimTransport {
        SimTransport {
            simulator,
            path: None,
            clock,
        }
    }

    /// The token kept in `path`; a new one (of `family`, default Molto-2)
    /// when the file does not exist yet.
    pub fn open_file(
        path: &Path,
        family: Option<Family>,
        serial: Option<&str>,
    ) -> Result<SimTransport, TransportError> {
        let mut simulator = if path.exists() {
            Simulator::load(path).map_err(|e| TransportError::Io(e.to_string()))?
        } else {
            let simulator = Simulator::new(family.unwrap_or(Family::Molto2), serial);
            simulator
                .save(path)
                .map_err(|e| TransportError::Io(e.to_string()))?;
            simulator
        };
        if let Some(family) = family
            && family != simulator.family()
        {
            return Err(TransportError::Spec(format!(
                "{} holds a simulated {}, not a {}",
                path.display(),
                simulator.family().product(),
                family.product()
            )));
        }
        simulator.power_cycle();
        Ok(SimTransport {
            simulator,
            path: Some(path.to_owned()),
            clock: Clock::System,
        })
    }
}

impl Transport for SimTransport {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let response = self.simulator.process(command, self.clock.now());
        if let Some(path) = &self.path {
            self.simulator
                .save(path)
                .map_err(|e| TransportError::Lost(e.to_string()))?;
        }
        Ok(response)
    }

    fn describe(&self) -> String {
        let what = format!(
            "simulated {} {}",
            self.simulator.family().product(),
            self.simulator.serial()
        );
        match &self.path {
            Some(path) => format!("{what} in {}", path.display()),
            None => what,
        }
    }

    fn family_hint(&self) -> Option<Family> {
        Some(self.simulator.family())
    }
}

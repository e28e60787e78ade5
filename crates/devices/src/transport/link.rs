//! A transport in use: APDU counting, traces with secrets redacted, and the
//! T=0 continuations of contact readers.

use super::{Transport, TransportError};
use crate::apdu::{Command, Response};

/// Which way a traced APDU went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceDirection {
    /// Host to token.
    Command,
    /// Token to host.
    Response,
}

type TraceSink<'a> = Box<dyn FnMut(TraceDirection, &str) + 'a>;

/// Commands and responses over a transport.
pub struct Link<'a> {
    transport: Box<dyn Transport + 'a>,
    trace: Option<TraceSink<'a>>,
    apdus: usize,
}

impl<'a> Link<'a> {
    pub fn new(transport: impl Transport + 'a) -> Link<'a> {
        Link {
            transport: Box::new(transport),
            trace: None,
            apdus: 0,
        }
    }

    /// Calls `sink` with every APDU as hex, secret-bearing bodies redacted.
    pub fn with_trace(mut self, sink: impl FnMut(TraceDirection, &str) + 'a) -> Link<'a> {
        self.trace = Some(Box::new(sink));
        self
    }

    /// APDUs sent so far (continuations included).
    pub fn apdus(&self) -> usize {
        self.apdus
    }

    /// The transport's description.
    pub fn describe(&self) -> String {
        self.transport.describe()
    }

    pub fn transport(&self) -> &dyn Transport {
        &*self.transport
    }

    fn send(&mut self, command: &Command) -> Result<Response, TransportError> {
        if let Some(trace) = &mut self.trace {
            trace(TraceDirection::Command, &command.trace_text());
        }
        self.apdus += 1;
        let bytes = self.transport.transmit(&command.to_bytes())?;
        let response = Response::parse(&bytes).map_err(|e| TransportError::Io(e.to_string()))?;
        if let Some(trace) = &mut self.trace {
            trace(TraceDirection::Response, &format!("{response:?}"));
        }
        Ok(response)
    }

    /// Sends a command and returns the complete response: `61 XX` is
    /// followed by GET RESPONSE, `6C XX` by the same command with Le = XX.
    pub fn exchange(&mut self, command: &Command) -> Result<Response, TransportError> {
        let mut response = self.send(command)?;
        if response.sw.sw1() == 0x6C {
            let mut again = command.clone();
            again.le = Some(response.sw.sw2());
            response = self.send(&again)?;
        }
        let mut data = Vec::new();
        let mut rounds = 0;
        while response.sw.sw1() == 0x61 && rounds < 16 {
            data.extend_from_slice(&response.data);
            let get_response = Command::header(0x00, 0xC0, 0, 0, Some(response.sw.sw2()));
            response = self.send(&get_response)?;
            rounds += 1;
        }
        if !data.is_empty() {
            data.extend_from_slice(&response.data);
            response.data = data;
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apdu::StatusWord;

    /// A contact reader's T=0 answers: `6C` asks for the right Le, `61`
    /// announces more data to fetch with GET RESPONSE.
    struct Script(Vec<(Vec<u8>, Vec<u8>)>);

    impl Transport for Script {
        fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
            let (expected, answer) = self.0.remove(0);
            assert_eq!(command, expected.as_slice());
            Ok(answer)
        }
        fn describe(&self) -> String {
            "script".into()
        }
    }

    #[test]
    fn t0_continuations() {
        let script = Script(vec![
            (vec![0x80, 0x41, 0, 0, 0], vec![0x6C, 0x19]),
            (vec![0x80, 0x41, 0, 0, 0x19], vec![1, 2, 0x61, 0x02]),
            (vec![0x00, 0xC0, 0, 0, 0x02], vec![3, 4, 0x90, 0x00]),
        ]);
        let mut lines = Vec::new();
        let mut link = Link::new(script).with_trace(|d, t| lines.push(format!("{d:?} {t}")));
        let response = link
            .exchange(&Command::header(0x80, 0x41, 0, 0, Some(0)))
            .unwrap();
        assert_eq!(response.data, [1, 2, 3, 4]);
        assert_eq!(response.sw, StatusWord::OK);
        assert_eq!(link.apdus(), 3);
        drop(link);
        assert_eq!(lines[0], "Command 80 41 00 00 00");
        assert_eq!(lines[5], "Response 03 04 90 00");
    }
}

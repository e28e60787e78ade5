//! The device layer's parsers on arbitrary bytes: response APDUs, the info
//! and public-block responses, CCID replies, and both simulators' command
//! dispatchers. No panic; a parsed block encodes back to what was parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oathdesk_devices::apdu::Response;
use oathdesk_devices::molto2;
use oathdesk_devices::sim::{Molto2Options, Molto2Sim, SingleOptions, SingleSim};
use oathdesk_devices::transport::usb::ccid;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = Response::parse(data) {
        assert_eq!(response.to_bytes(), data);
    }
    let _ = molto2::parse_info(data);
    let _ = molto2::parse_challenge(data);
    if let Ok(block) = molto2::parse_public_block(data) {
        let again = molto2::parse_public_block(&molto2::encode_public_block(&block));
        assert_eq!(again.as_ref(), Ok(&block));
    }
    if let Some(&seq) = data.first() {
        let _ = ccid::parse_reply(&data[1..], ccid::PC_TO_RDR_XFR_BLOCK, seq);
    }
    let _ = ccid::features(data);
    // Commands split at 0xFF bytes, fed to fresh simulators in order.
    let mut molto = Molto2Sim::new("826658719844499", Molto2Options::default());
    let mut single = SingleSim::new("86596220000001", SingleOptions::default());
    for command in data.split(|&b| b == 0xFF) {
        let _ = molto.process(command, 1_700_000_000);
        let _ = single.process(command, 1_700_000_000);
    }
});

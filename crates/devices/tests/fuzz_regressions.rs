//! Inputs for the `device_responses` fuzz target (`fuzz/`), replayed as
//! plain tests with the same checks: no panic, and what parses re-encodes.
//! Cases found by fuzzing or by the unit tests are kept here.

use oathdesk_devices::apdu::Response;
use oathdesk_devices::molto2;
use oathdesk_devices::sim::{Molto2Options, Molto2Sim, SingleOptions, SingleSim};
use oathdesk_devices::transport::usb::ccid;

/// The fuzz target's body.
fn check(data: &[u8]) {
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
    let mut molto = Molto2Sim::new("826658719844499", Molto2Options::default());
    let mut single = SingleSim::new("86596220000001", SingleOptions::default());
    for command in data.split(|&b| b == 0xFF) {
        let _ = molto.process(command, 1_700_000_000);
        let _ = single.process(command, 1_700_000_000);
    }
}

/// CCID: a reply whose length field is garbage used to be waited on for
/// 4 GB of "data" (the USB reader loop would never end); the type is now
/// checked first and lengths are capped.
#[test]
fn ccid_reply_with_an_absurd_length() {
    check(&[0x00, 0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0]);
    assert_eq!(
        ccid::parse_reply(
            &[0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0],
            ccid::PC_TO_RDR_XFR_BLOCK,
            0
        ),
        Err(ccid::ReplyError::Length(u32::MAX))
    );
    assert_eq!(
        ccid::parse_reply(
            &[0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ccid::PC_TO_RDR_XFR_BLOCK,
            0
        ),
        Err(ccid::ReplyError::Kind {
            expected: 0x80,
            found: 0x42
        })
    );
}

/// A class descriptor claiming more bytes than there are, or zero.
#[test]
fn ccid_descriptors_cut_short() {
    check(&[54, 0x21, 0, 0]);
    check(&[0, 0x21]);
    check(&[1]);
}

/// Public blocks with TLV lengths past the end, a `95` length longer than
/// the data, a tag 70 of the wrong size, and a seed byte that is not 0/1.
#[test]
fn public_blocks_with_lying_lengths() {
    for data in [
        &[0x95, 0xFF, 0x70, 0x1D][..],
        &[0x95, 0x04, 0x71, 0x05, 0x70, 0x00],
        &[0x95, 0x02, 0x70, 0x00],
        &[0x95, 0x01, 0x70],
    ] {
        check(data);
        assert!(molto2::parse_public_block(data).is_err(), "{data:02X?}");
    }
    let mut block = vec![0x95, 0x1F, 0x70, 0x1D];
    block.extend_from_slice(&[0; 28]);
    block.push(2);
    check(&block);
    assert!(molto2::parse_public_block(&block).is_err());
    // The title is read without trailing zeros, so a title with a zero in
    // the middle re-encodes to itself.
    let mut inner_zero = vec![0x95, 0x1F, 0x70, 0x1D, 0x20, b'a', 0, b'b'];
    inner_zero.extend_from_slice(&[0; 25]);
    check(&inner_zero);
}

/// Info responses with the serial length byte at 255 and non-ASCII serials.
#[test]
fn info_responses_with_bad_serials() {
    check(&[0, 0, 0, 0xFF, b'1']);
    check(&[0, 0, 0, 1, 0xC3, 0, 0, 1, 2, 3, 4]);
    assert!(molto2::parse_info(&[0, 0, 0, 1, 0xC3, 0, 0, 1, 2, 3, 4]).is_err());
    assert!(molto2::parse_info(&[0, 0, 0, 0, 0, 0, 1, 2, 3, 4]).is_err());
}

/// Simulator dispatch: Lc promising more than there is, secure commands
/// shorter than a MAC, an answer without a challenge, config TLVs that
/// nest past their end.
#[test]
fn simulator_commands_that_lie_about_lengths() {
    check(&[0x84, 0xC5, 1, 0, 0x40, 1, 2]);
    check(&[0x84, 0xD4, 1, 0, 3, 1, 2, 3]);
    check(&[0x80, 0xCE, 0, 0, 0x10]);
    check(&[
        0x84, 0xD4, 1, 0, 0x0A, 0x81, 0x06, 0x86, 0x09, 0x0A, 0x01, 0, 0, 0, 0,
    ]);
    check(&[0xFF, 0xFF, 0x80, 0x41, 0xFF]);
    let mut sim = Molto2Sim::new("1", Molto2Options::default());
    assert_eq!(
        sim.process(&[0x84, 0xC5, 1, 0, 0x40, 1, 2], 0).sw,
        oathdesk_devices::apdu::StatusWord::WRONG_LENGTH
    );
}

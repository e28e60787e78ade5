//! The CCID messages a short-APDU exchange needs (USB CCID 1.1 §6), as pure
//! functions over bytes: tested without hardware.

pub const PC_TO_RDR_ICC_POWER_ON: u8 = 0x62;
pub const PC_TO_RDR_ICC_POWER_OFF: u8 = 0x63;
pub const PC_TO_RDR_SET_PARAMETERS: u8 = 0x61;
pub const PC_TO_RDR_XFR_BLOCK: u8 = 0x6F;
pub const RDR_TO_PC_DATA_BLOCK: u8 = 0x80;
pub const RDR_TO_PC_SLOT_STATUS: u8 = 0x81;
pub const RDR_TO_PC_PARAMETERS: u8 = 0x82;

/// `dwFeatures` bits of the CCID class descriptor.
pub const FEATURE_AUTO_PPS: u32 = 0x0000_0080;
pub const FEATURE_AUTO_PARAMETERS: u32 = 0x0000_0002;
pub const FEATURE_AUTO_PPS_CUR: u32 = 0x0000_0040;
pub const FEATURE_TPDU: u32 = 0x0001_0000;
pub const FEATURE_SHORT_APDU: u32 = 0x0002_0000;
pub const FEATURE_EXTENDED_APDU: u32 = 0x0004_0000;
const EXCHANGE_LEVEL: u32 = FEATURE_TPDU | FEATURE_SHORT_APDU | FEATURE_EXTENDED_APDU;

/// CCID slot error `ICC_MUTE`: the card did not answer the power-on.
pub const ERROR_ICC_MUTE: u8 = 0xFE;

/// `wLevelParameter` asking for the next part of a chained response.
const LEVEL_CONTINUE: u16 = 0x0010;

/// How a reader exchanges data with the card (from `dwFeatures`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Short or extended APDUs: the reader does the protocol.
    Apdu,
    /// T=0 TPDUs: our short APDUs go as they are; the Link answers 61xx/6Cxx.
    Tpdu { needs_parameters: bool },
    /// Character level: the host would have to run T=0/T=1 byte by byte.
    Character,
}

/// The exchange level a reader announces.
pub fn level(features: u32) -> Level {
    if features & (FEATURE_SHORT_APDU | FEATURE_EXTENDED_APDU) != 0 {
        Level::Apdu
    } else if features & FEATURE_TPDU != 0 {
        // Without automatic parameter negotiation the host sets them.
        let automatic =
            features & (FEATURE_AUTO_PARAMETERS | FEATURE_AUTO_PPS | FEATURE_AUTO_PPS_CUR) != 0;
        Level::Tpdu {
            needs_parameters: !automatic,
        }
    } else {
        debug_assert_eq!(features & EXCHANGE_LEVEL, 0);
        Level::Character
    }
}

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

/// An empty XfrBlock asking for the next part of a chained response.
pub fn continue_chain(seq: u8) -> Vec<u8> {
    let [low, high] = LEVEL_CONTINUE.to_le_bytes();
    message(PC_TO_RDR_XFR_BLOCK, seq, [0, low, high], &[])
}

/// T=0 parameters (CCID §6.1.7): Fi/Di from the ATR's TA1 (`11` when the
/// ATR has none), direct convention, guard time 0, waiting integer 10.
pub fn set_parameters_t0(seq: u8, fi_di: u8) -> Vec<u8> {
    message(
        PC_TO_RDR_SET_PARAMETERS,
        seq,
        [0 /* T=0 */, 0, 0],
        &[fi_di, 0x00, 0x00, 0x0A, 0x00],
    )
}

/// TA1 of an ATR (Fi/Di), when present.
pub fn atr_ta1(atr: &[u8]) -> Option<u8> {
    // T0 is the second byte; bit 5 of its high nibble announces TA1.
    let t0 = *atr.get(1)?;
    (t0 & 0x10 != 0).then(|| atr.get(2).copied()).flatten()
}

/// The reply message type a request expects.
pub fn reply_kind(request: u8) -> u8 {
    match request {
        PC_TO_RDR_ICC_POWER_ON | PC_TO_RDR_XFR_BLOCK => RDR_TO_PC_DATA_BLOCK,
        PC_TO_RDR_SET_PARAMETERS => RDR_TO_PC_PARAMETERS,
        _ => RDR_TO_PC_SLOT_STATUS,
    }
}

/// Where a data block stands in a chained response (`bChainParameter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain {
    /// The whole response (`00`), or its last part (`02`).
    Last,
    /// A first or middle part (`01`, `03`), or an empty block with more to
    /// come (`10`): ask for the next.
    More,
}

/// A parsed bulk-in message.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Data for the host (ATR after power-on, response APDU after XfrBlock).
    Data(Vec<u8>, Chain),
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
    /// Not the message type the request is answered with.
    Kind { expected: u8, found: u8 },
    /// A length no short-APDU reply can have (the reader is confused).
    Length(u32),
    /// A `bChainParameter` CCID does not define.
    ChainParameter(u8),
}

/// The longest reply accepted: an extended APDU response and then some.
pub const MAX_REPLY_DATA: u32 = 65_538;

/// Parses a reply to the message `request` sent with sequence `seq`.
pub fn parse_reply(bytes: &[u8], request: u8, seq: u8) -> Result<Reply, ReplyError> {
    let expected = reply_kind(request);
    // The type first: a stray packet is not waited on for its "length".
    match bytes.first() {
        None => return Err(ReplyError::Incomplete { needed: 10 }),
        Some(&kind) if kind != expected => {
            return Err(ReplyError::Kind {
                expected,
                found: kind,
            });
        }
        Some(_) => {}
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
    let chain = if expected == RDR_TO_PC_DATA_BLOCK {
        match bytes[9] {
            0x00 | 0x02 => Chain::Last,
            0x01 | 0x03 | 0x10 => Chain::More,
            other => return Err(ReplyError::ChainParameter(other)),
        }
    } else {
        Chain::Last
    };
    Ok(Reply::Data(bytes[10..needed].to_vec(), chain))
}

/// The sequence numbers of one session: a random start, so that a late
/// reply to another session's message is not taken for ours.
#[derive(Debug)]
pub struct Sequence(u8);

impl Sequence {
    pub fn starting_at(first: u8) -> Sequence {
        Sequence(first.wrapping_sub(1))
    }

    pub fn random() -> Sequence {
        let mut byte = [0u8; 1];
        // Without randomness, any start is as good as 0: uniqueness within
        // the session is what the sequence check needs.
        let _ = getrandom::fill(&mut byte);
        Sequence::starting_at(byte[0])
    }

    pub fn advance(&mut self) -> u8 {
        self.0 = self.0.wrapping_add(1);
        self.0
    }
}

/// What a failed power-on means to the person at the desk.
pub fn power_on_failure(error: u8, molto2: bool) -> String {
    match (error, molto2) {
        (ERROR_ICC_MUTE, true) => {
            "the Molto-2 is still starting (its card interface can take 1–2 minutes after it is \
             plugged in): wait 1–2 minutes and try again, on a direct USB port rather than a hub"
                .into()
        }
        (ERROR_ICC_MUTE, false) => {
            "the card does not answer: switch the token on and hold it still on the reader".into()
        }
        (code, _) => format!("power-on failed (CCID error {code:02X})"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_replies() {
        assert_eq!(power_on(1), [0x62, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(
            xfr_block(2, &[0x80, 0x41, 0, 0, 0]),
            [0x6F, 5, 0, 0, 0, 0, 2, 0, 0, 0, 0x80, 0x41, 0, 0, 0]
        );
        let x = PC_TO_RDR_XFR_BLOCK;
        let reply = [0x80, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0x90, 0x00];
        assert_eq!(
            parse_reply(&reply, x, 2),
            Ok(Reply::Data(vec![0x90, 0], Chain::Last))
        );
        assert_eq!(
            parse_reply(&reply[..11], x, 2),
            Err(ReplyError::Incomplete { needed: 12 })
        );
        assert_eq!(
            parse_reply(&reply, x, 3),
            Err(ReplyError::Sequence {
                expected: 3,
                found: 2
            })
        );
        let extension = [0x80, 0, 0, 0, 0, 0, 2, 0x80, 1, 0];
        assert_eq!(parse_reply(&extension, x, 2), Ok(Reply::TimeExtension));
        let no_card = [0x81, 0, 0, 0, 0, 0, 2, 0x42, 0xFE, 0];
        assert_eq!(
            parse_reply(&no_card, PC_TO_RDR_ICC_POWER_OFF, 2),
            Ok(Reply::NoCard)
        );
        let failed = [0x80, 0, 0, 0, 0, 0, 2, 0x40, 0xFB, 0];
        assert_eq!(parse_reply(&failed, x, 2), Ok(Reply::Failed(0xFB)));
        assert_eq!(
            parse_reply(&[0x99; 10], x, 0),
            Err(ReplyError::Kind {
                expected: 0x80,
                found: 0x99
            })
        );
        assert_eq!(
            parse_reply(&[0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0], x, 0),
            Err(ReplyError::Length(u32::MAX))
        );
    }

    #[test]
    fn a_reply_of_the_wrong_type_is_refused() {
        // A slot status where a data block is due (and the other way round)
        // is another message's answer, not ours.
        let status = [0x81, 0, 0, 0, 0, 0, 5, 0x00, 0, 0];
        assert_eq!(
            parse_reply(&status, PC_TO_RDR_XFR_BLOCK, 5),
            Err(ReplyError::Kind {
                expected: 0x80,
                found: 0x81
            })
        );
        let data = [0x80, 0, 0, 0, 0, 0, 5, 0x00, 0, 0];
        assert!(matches!(
            parse_reply(&data, PC_TO_RDR_ICC_POWER_OFF, 5),
            Err(ReplyError::Kind { .. })
        ));
        assert_eq!(
            parse_reply(&data, PC_TO_RDR_ICC_POWER_ON, 5),
            Ok(Reply::Data(vec![], Chain::Last))
        );
    }

    #[test]
    fn chained_responses_ask_for_more() {
        let part = |chain: u8| [0x80, 1, 0, 0, 0, 0, 7, 0, 0, chain, 0xAA];
        let x = PC_TO_RDR_XFR_BLOCK;
        for chain in [0x01, 0x03, 0x10] {
            assert_eq!(
                parse_reply(&part(chain), x, 7),
                Ok(Reply::Data(vec![0xAA], Chain::More))
            );
        }
        assert_eq!(
            parse_reply(&part(0x02), x, 7),
            Ok(Reply::Data(vec![0xAA], Chain::Last))
        );
        assert_eq!(
            parse_reply(&part(0x05), x, 7),
            Err(ReplyError::ChainParameter(0x05))
        );
        assert_eq!(continue_chain(8), [0x6F, 0, 0, 0, 0, 0, 8, 0, 0x10, 0]);
    }

    #[test]
    fn sequences_start_anywhere_and_wrap() {
        let mut seq = Sequence::starting_at(0xFF);
        assert_eq!((seq.advance(), seq.advance()), (0xFF, 0x00));
        // Random starts: 16 sessions do not all start at the same number.
        let starts: std::collections::HashSet<u8> =
            (0..16).map(|_| Sequence::random().advance()).collect();
        assert!(starts.len() > 1, "{starts:?}");
    }

    #[test]
    fn reader_levels_and_parameters() {
        assert_eq!(level(0x0004_0840), Level::Apdu);
        assert_eq!(level(0x0002_0000), Level::Apdu);
        assert_eq!(
            level(0x0001_0000),
            Level::Tpdu {
                needs_parameters: true
            }
        );
        assert_eq!(
            level(0x0001_00BA),
            Level::Tpdu {
                needs_parameters: false
            }
        );
        assert_eq!(level(0x0000_0000), Level::Character);
        assert_eq!(atr_ta1(&[0x3B, 0x95, 0x13, 0x81]), Some(0x13));
        assert_eq!(atr_ta1(&[0x3B, 0x80, 0x80, 0x01]), None);
        assert_eq!(
            set_parameters_t0(4, 0x13),
            [0x61, 5, 0, 0, 0, 0, 4, 0, 0, 0, 0x13, 0, 0, 0x0A, 0]
        );
        assert_eq!(reply_kind(PC_TO_RDR_SET_PARAMETERS), RDR_TO_PC_PARAMETERS);
    }

    #[test]
    fn a_mute_molto2_is_still_starting() {
        assert!(power_on_failure(ERROR_ICC_MUTE, true).contains("wait 1–2 minutes"));
        assert!(power_on_failure(ERROR_ICC_MUTE, false).contains("switch the token on"));
        assert!(power_on_failure(0xFB, true).contains("CCID error FB"));
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

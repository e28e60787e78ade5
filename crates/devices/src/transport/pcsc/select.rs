//! Which PC/SC reader holds the token: pure decisions over reader names and
//! the cards' answers, tested without a reader.
//!
//! Never "the first reader with a card": that can be a YubiKey, a laptop's
//! smart-card reader or a Token2 FIDO key. A reader is the token's when its
//! name names the Molto-2 (`molto`, not the `TOKEN2` brand, which Token2's
//! FIDO keys carry too) or when its card answers the read-only info command
//! (`80 41 00 00 00`, no key, nothing written) as a Token2 token does: `9000`
//! with a serial of digits. The card's ATR is shown with the choice: no
//! published ATR tells a Token2 token from other cards.

use crate::molto2;
use crate::params::Family;
use crate::single;

/// True when the reader's name names a Molto-2 (`TOKEN2 Molto2 [CCID
/// Interface] 00 00`).
pub fn names_molto(reader: &str) -> bool {
    reader.to_lowercase().contains("molto")
}

/// What a card is, from its reader's name and its answer to the info command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    Token2 {
        family: Family,
        serial: String,
    },
    /// Not a Token2 token; why, for the message.
    Other(String),
}

/// Reads a card's answer to [`molto2::info`] (data and status word).
pub fn identify(reader: &str, response: &[u8]) -> Identity {
    let Some((data, sw)) = response.split_last_chunk::<2>() else {
        return Identity::Other("it gave no status word to the info command".into());
    };
    if *sw != [0x90, 0x00] {
        return Identity::Other(format!(
            "it refused the info command ({:02X}{:02X})",
            sw[0], sw[1]
        ));
    }
    match molto2::parse_info(data) {
        Ok(info) if info.serial.bytes().all(|b| b.is_ascii_digit()) => {
            let family = if single::model_for_serial(&info.serial).is_some() && !names_molto(reader)
            {
                Family::SingleProfile
            } else {
                Family::Molto2
            };
            Identity::Token2 {
                family,
                serial: info.serial,
            }
        }
        Ok(info) => Identity::Other(format!(
            "its serial '{}' is not a Token2 serial",
            info.serial
        )),
        Err(e) => Identity::Other(format!("its info answer is not a Token2 one ({e})")),
    }
}

/// The readers to try, in order: those whose name contains `wanted`
/// (case-insensitive) when the user named one, else every reader with the
/// Molto-2's named first.
pub fn probe_order(readers: &[String], wanted: Option<&str>) -> Result<Vec<String>, String> {
    match wanted {
        Some(part) => {
            let part = part.to_lowercase();
            let matching: Vec<String> = readers
                .iter()
                .filter(|r| r.to_lowercase().contains(&part))
                .cloned()
                .collect();
            if matching.is_empty() {
                return Err(format!(
                    "no PC/SC reader's name contains '{part}'; the readers are: {}",
                    readers.join(", ")
                ));
            }
            Ok(matching)
        }
        None => {
            let mut ordered = readers.to_vec();
            ordered.sort_by_key(|r| !names_molto(r));
            Ok(ordered)
        }
    }
}

/// What probing one reader found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Token2 { family: Family, serial: String },
    Other(String),
    NoCard(String),
}

/// The one reader to use among the probed ones (`reader`, what it holds),
/// or a message saying why none or which ones to choose from.
pub fn choose(probed: &[(String, Probe)]) -> Result<usize, String> {
    let tokens: Vec<usize> = probed
        .iter()
        .enumerate()
        .filter(|(_, (_, probe))| matches!(probe, Probe::Token2 { .. }))
        .map(|(i, _)| i)
        .collect();
    match tokens.as_slice() {
        [one] => Ok(*one),
        [] if probed.len() == 1 => match &probed[0] {
            (reader, Probe::NoCard(why)) => Err(format!("'{reader}': {why}")),
            (reader, Probe::Other(why)) => Err(format!("'{reader}' holds no Token2 token: {why}")),
            (_, Probe::Token2 { .. }) => unreachable!("no token among these"),
        },
        [] => {
            let lines: Vec<String> = probed
                .iter()
                .map(|(reader, probe)| match probe {
                    Probe::NoCard(why) => format!("'{reader}': {why}"),
                    Probe::Other(why) => format!("'{reader}': not a Token2 token: {why}"),
                    Probe::Token2 { .. } => unreachable!("no token among these"),
                })
                .collect();
            Err(format!(
                "no Token2 token in any PC/SC reader ({}): plug in the Molto-2, or switch the single-profile token \
                 on and hold it on the reader",
                lines.join("; ")
            ))
        }
        several => {
            let lines: Vec<String> = several
                .iter()
                .map(|&i| match &probed[i] {
                    (reader, Probe::Token2 { serial, .. }) => {
                        format!("'{reader}' (serial {serial})")
                    }
                    _ => unreachable!("only tokens here"),
                })
                .collect();
            Err(format!(
                "{} Token2 tokens are connected: {}; choose one with --transport 'pcsc:PART OF THE READER NAME'",
                several.len(),
                lines.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info_answer(serial: &str) -> Vec<u8> {
        let mut answer = molto2::encode_info(serial, 1_700_000_000);
        answer.extend_from_slice(&[0x90, 0x00]);
        answer
    }

    #[test]
    fn a_token2_answer_is_recognised_and_its_family_told() {
        assert_eq!(
            identify("Virtual PCD 00 00", &info_answer("826658719844499")),
            Identity::Token2 {
                family: Family::Molto2,
                serial: "826658719844499".into()
            }
        );
        let single_serial = "86596320000001";
        assert!(matches!(
            identify(
                "ACS ACR122U PICC Interface 00 00",
                &info_answer(single_serial)
            ),
            Identity::Token2 {
                family: Family::SingleProfile,
                ..
            }
        ));
    }

    #[test]
    fn other_cards_are_not_taken_for_a_token() {
        // A YubiKey or a bank card: instruction not supported.
        assert!(matches!(
            identify("Yubico YubiKey OTP+FIDO+CCID 00 00", &[0x6D, 0x00]),
            Identity::Other(why) if why.contains("6D00")
        ));
        assert!(matches!(identify("x", &[0x90]), Identity::Other(_)));
        // 9000 with data that is no Token2 info block.
        assert!(matches!(
            identify("x", &[1, 2, 3, 4, 5, 0x90, 0x00]),
            Identity::Other(_)
        ));
        assert!(matches!(
            identify("x", &info_answer("ABC-1")),
            Identity::Other(_)
        ));
    }

    #[test]
    fn molto_readers_are_tried_first_and_named_readers_only() {
        let readers = vec![
            "Yubico YubiKey 00 00".to_string(),
            "TOKEN2 Molto2 [CCID Interface] 01 00".to_string(),
            "Token2 PIN+R3 02 00".to_string(),
        ];
        assert_eq!(probe_order(&readers, None).unwrap()[0], readers[1]);
        assert_eq!(
            probe_order(&readers, Some("pin+")).unwrap(),
            [readers[2].clone()]
        );
        let err = probe_order(&readers, Some("acr122")).unwrap_err();
        assert!(err.contains("Yubico YubiKey 00 00"), "{err}");
    }

    #[test]
    fn exactly_one_token_is_chosen_never_the_first_card() {
        let yubikey = ("Yubico".to_string(), Probe::Other("refused (6D00)".into()));
        let token = (
            "Virtual PCD 00 01".to_string(),
            Probe::Token2 {
                family: Family::Molto2,
                serial: "1".into(),
            },
        );
        let empty = ("NFC".to_string(), Probe::NoCard("no card".into()));
        assert_eq!(
            choose(&[yubikey.clone(), empty.clone(), token.clone()]),
            Ok(2)
        );
        let none = choose(&[yubikey.clone(), empty.clone()]).unwrap_err();
        assert!(none.contains("'Yubico': not a Token2 token"), "{none}");
        assert_eq!(choose(&[empty]).unwrap_err(), "'NFC': no card");
        let two = choose(&[token.clone(), yubikey, token]).unwrap_err();
        assert!(two.starts_with("2 Token2 tokens"), "{two}");
    }
}

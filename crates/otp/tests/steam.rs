//! Steam Guard codes against an independent implementation (totp-rs's
//! `steam` feature).

use oathdesk_otp::{STEAM_ALPHABET, Secret, Steam};
use proptest::prelude::*;

proptest! {
    #[test]
    fn steam_codes_match_totp_rs(
        key in proptest::collection::vec(any::<u8>(), 1..64),
        time in 0u64..=4_102_444_800,
    ) {
        let ours = Steam::new(&Secret::from_bytes(key.clone()))
            .generate_at(time)
            .unwrap()
            .to_string();
        let theirs = totp_rs::TOTP::new_steam(key).generate(time);
        prop_assert_eq!(&ours, &theirs);
        prop_assert!(ours.bytes().all(|b| STEAM_ALPHABET.contains(&b)));
    }
}

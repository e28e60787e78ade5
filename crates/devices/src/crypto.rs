//! The cryptography both token families share (spec §2): SM4 from RustCrypto,
//! the per-command CBC-MAC, the padding rules and the key derivations.
//!
//! Nothing here is a new primitive: SM4 is the `sm4` crate, CBC chaining is
//! the `cbc` crate, SHA-1 is the `sha1` crate. What this module owns is how
//! the tokens combine them, byte for byte.

use cbc::cipher::array::Array;
use cbc::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, BlockModeEncrypt, KeyInit, KeyIvInit};
use sha1::{Digest, Sha1};
use sm4::Sm4;
use zeroize::{Zeroize, Zeroizing};

/// The SM4 block size.
pub const BLOCK: usize = 16;

/// The Molto-2 factory customer key, ASCII `TOKEN2MOLTO1-KEY` (spec §2.2).
pub const MOLTO2_FACTORY_KEY: &[u8; 16] = b"TOKEN2MOLTO1-KEY";

/// The fixed SM4 key of every single-profile token (spec §2.2): public,
/// documented by Token2, and not changeable.
pub const SINGLE_PROFILE_KEY: [u8; 16] = [
    0x8A, 0xD2, 0x06, 0x88, 0x3C, 0xA3, 0x69, 0x48, 0x2A, 0xB2, 0x71, 0x82, 0xB6, 0xE8, 0x32, 0x24,
];

/// A 16-byte SM4 key as the token uses it (K in the spec). Zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKey([u8; 16]);

impl DeviceKey {
    /// The key itself (a single-profile token's fixed key, or a derived one).
    pub fn from_bytes(bytes: [u8; 16]) -> DeviceKey {
        DeviceKey(bytes)
    }

    /// A Molto-2 key from its customer key: `SHA1(customer_key)[0..16]`.
    /// Any length works; the token only ever stores the derived 16 bytes.
    pub fn from_customer_key(customer_key: &[u8]) -> DeviceKey {
        let mut digest = Sha1::digest(customer_key);
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        digest.as_mut_slice().zeroize();
        DeviceKey(key)
    }

    /// The Molto-2 factory key (derived from `TOKEN2MOLTO1-KEY`).
    pub fn molto2_factory() -> DeviceKey {
        DeviceKey::from_customer_key(MOLTO2_FACTORY_KEY)
    }

    /// The single-profile tokens' fixed key.
    pub fn single_profile() -> DeviceKey {
        DeviceKey(SINGLE_PROFILE_KEY)
    }

    /// The 16 key bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Whether this is the Molto-2 factory key (seeds written under it can be
    /// decrypted by anyone who captures the USB traffic).
    pub fn is_molto2_factory(&self) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.ct_eq(DeviceKey::molto2_factory().as_bytes()))
    }

    fn cipher(&self) -> Sm4 {
        Sm4::new(&Array::from(self.0))
    }
}

impl Drop for DeviceKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(..)")
    }
}

/// SM4-ECB over whole blocks, in place: each block encrypted on its own
/// (spec §2.5: "non-CBC! no IV!"). `data.len()` must be a multiple of 16.
pub fn ecb_encrypt(key: &DeviceKey, data: &mut [u8]) {
    assert_eq!(data.len() % BLOCK, 0, "ECB input is whole blocks");
    let cipher = key.cipher();
    let (blocks, _) = Array::slice_as_chunks_mut(data);
    cipher.encrypt_blocks(blocks);
}

/// SM4-ECB decryption over whole blocks, in place.
pub fn ecb_decrypt(key: &DeviceKey, data: &mut [u8]) {
    assert_eq!(data.len() % BLOCK, 0, "ECB input is whole blocks");
    let cipher = key.cipher();
    let (blocks, _) = Array::slice_as_chunks_mut(data);
    cipher.decrypt_blocks(blocks);
}

/// Appends `80` then zeros to the next block boundary, always: an aligned
/// input gets a whole extra block (ISO/IEC 9797-1 method 2). The only seed
/// framing that every de-padding rule reads back (spec §2.5).
pub fn pad_always(data: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut padded = Zeroizing::new(Vec::with_capacity((data.len() / BLOCK + 1) * BLOCK));
    padded.extend_from_slice(data);
    padded.push(0x80);
    while padded.len() % BLOCK != 0 {
        padded.push(0);
    }
    padded
}

/// Appends `80` then zeros only when the input is not block-aligned (the MAC
/// rule of spec §2.4, the title rule, and the older seed framing).
pub fn pad_if_unaligned(data: &[u8]) -> Zeroizing<Vec<u8>> {
    if data.len().is_multiple_of(BLOCK) && !data.is_empty() {
        return Zeroizing::new(data.to_vec());
    }
    pad_always(data)
}

/// Appends zeros (no `80` marker) to the next block boundary: Token2's
/// framing of the all-zero "delete" seed (spec §3.5).
pub fn pad_zeros(data: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut padded = Zeroizing::new(data.to_vec());
    while !padded.len().is_multiple_of(BLOCK) || padded.is_empty() {
        padded.push(0);
    }
    padded
}

/// The device-side de-padding rule of the reference firmware (spec §2.5):
/// from the end, skip `00`s; the first other byte must be `80` and marks the
/// end of the data. Returns the data length, or `None` when the rule fails.
pub fn unpad_strict(plain: &[u8]) -> Option<usize> {
    let end = plain.iter().rposition(|&b| b != 0)?;
    (plain[end] == 0x80).then_some(end)
}

/// The per-command MAC of every CLA `84` command (spec §2.4): the header is
/// `80 INS P1 P2 Lc'` with `Lc'` the body length without MAC; padded with
/// `80 00…` only when unaligned; SM4-CBC with a zero IV; the first four bytes
/// of the last block.
pub fn command_mac(key: &DeviceKey, ins: u8, p1: u8, p2: u8, body: &[u8]) -> [u8; 4] {
    let mut input = Vec::with_capacity(5 + body.len());
    input.extend_from_slice(&[0x80, ins, p1, p2, body.len() as u8]);
    input.extend_from_slice(body);
    cbc_mac(key, &input)
}

/// SM4 CBC-MAC (zero IV) of `data` padded with [`pad_if_unaligned`]: the
/// first four bytes of the last ciphertext block.
pub fn cbc_mac(key: &DeviceKey, data: &[u8]) -> [u8; 4] {
    let mut padded = pad_if_unaligned(data);
    let mut chain =
        cbc::Encryptor::<Sm4>::new(&Array::from(*key.as_bytes()), &Array::from([0u8; BLOCK]));
    let (blocks, _) = Array::slice_as_chunks_mut(padded.as_mut_slice());
    chain.encrypt_blocks(blocks);
    let last = padded.len() - BLOCK;
    [
        padded[last],
        padded[last + 1],
        padded[last + 2],
        padded[last + 3],
    ]
}

/// The answer to a challenge (spec §2.3): SM4-ECB of `challenge || 00×8`.
pub fn challenge_answer(key: &DeviceKey, challenge: &[u8; 8]) -> [u8; 16] {
    let mut block = [0u8; 16];
    block[..8].copy_from_slice(challenge);
    ecb_encrypt(key, &mut block);
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        crate::hex::decode(text).unwrap()
    }

    /// Spec §2.1: the standard SM4 known-answer test.
    #[test]
    fn sm4_known_answer() {
        let key: [u8; 16] = hex("0123456789ABCDEFFEDCBA9876543210").try_into().unwrap();
        let mut block = key.to_vec();
        ecb_encrypt(&DeviceKey::from_bytes(key), &mut block);
        assert_eq!(block, hex("681EDF34D206965E86B3E94F536E4246"));
        ecb_decrypt(&DeviceKey::from_bytes(key), &mut block);
        assert_eq!(block, key);
    }

    /// Spec §5.1: the PyPI `sm4` README example (ECB, two blocks).
    #[test]
    fn sm4_ecb_two_blocks() {
        let key = DeviceKey::from_bytes(*b"any length16 key");
        let mut data = b"Any very very very long message!".to_vec();
        ecb_encrypt(&key, &mut data);
        assert_eq!(
            data,
            hex("158A185F7167F4250830B2484546464F900EC1BB07E5AEEDD590F44BFBAE5DAE")
        );
    }

    /// Spec §2.2 and §5.1: the Molto-2 factory key derivation.
    #[test]
    fn molto2_factory_key() {
        assert_eq!(
            DeviceKey::molto2_factory().as_bytes().to_vec(),
            hex("099250fdb017f442da429ecbbee17f79")
        );
        assert!(DeviceKey::molto2_factory().is_molto2_factory());
        assert!(!DeviceKey::from_customer_key(b"0123456789ABCDEF").is_molto2_factory());
        // Spec §5.2: SHA1("0123456789ABCDEF")[0..16].
        assert_eq!(
            DeviceKey::from_customer_key(b"0123456789ABCDEF")
                .as_bytes()
                .to_vec(),
            hex("CE27CB141098FEB00714E758646BE3E9")
        );
    }

    /// Spec §5.1: calc_mac(K, "hello world test!!") under the factory key.
    #[test]
    fn mac_known_answer() {
        assert_eq!(
            cbc_mac(&DeviceKey::molto2_factory(), b"hello world test!!").to_vec(),
            hex("2cf7c205")
        );
    }

    /// Spec §5.1 and §5.2: challenge answers.
    #[test]
    fn challenge_answers() {
        let molto = DeviceKey::molto2_factory();
        let challenge: [u8; 8] = hex("1122334455667788").try_into().unwrap();
        assert_eq!(
            challenge_answer(&molto, &challenge).to_vec(),
            hex("550ec1328f963eb02972bb141e1cf521")
        );
        let example = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            challenge_answer(&molto, &example).to_vec(),
            hex("A01BA116091E6FBFDB95936C9A2E3F48")
        );
        assert_eq!(
            challenge_answer(&DeviceKey::single_profile(), &example).to_vec(),
            hex("C1CD2CF40D508CEDC1274FF1AE4C19F1")
        );
    }

    #[test]
    fn padding_rules() {
        assert_eq!(pad_always(&[1; 10]).len(), 16);
        assert_eq!(pad_always(&[1; 16]).len(), 32);
        assert_eq!(pad_always(&[1; 16])[16], 0x80);
        assert_eq!(pad_always(&[1; 63]).len(), 64);
        assert_eq!(pad_if_unaligned(&[1; 16]).len(), 16);
        assert_eq!(pad_if_unaligned(&[1; 17]).len(), 32);
        assert_eq!(pad_zeros(&[0; 20]).as_slice(), &[0u8; 32][..]);
        // The reference firmware's de-padding reads back every always-padded
        // length 1..=63.
        for len in 1..=63usize {
            let seed: Vec<u8> = (1..=len as u8).collect();
            assert_eq!(unpad_strict(&pad_always(&seed)), Some(len), "length {len}");
        }
        // An unpadded aligned block ending in a non-zero byte is rejected;
        // one that happens to end in 80 00… is silently truncated.
        assert_eq!(unpad_strict(&[7; 16]), None);
        let mut tricky = [7u8; 16];
        tricky[14] = 0x80;
        tricky[15] = 0;
        assert_eq!(unpad_strict(&tricky), Some(14));
        assert_eq!(unpad_strict(&[0; 16]), None);
    }
}

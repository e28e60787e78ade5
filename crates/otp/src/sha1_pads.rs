//! HMAC-SHA-1 for HOTP, one whole compression at a time, several codes in
//! flight.
//!
//! A SHA-1 code is two compressions once the key's pads are absorbed: the
//! counter block keyed by the inner pad, then the inner digest keyed by the
//! outer pad. The second needs the first, and SHA-NI compressions are
//! bound by their latency, so one code at a time leaves most of a core
//! idle. [`truncated_batch`] starts the inner compressions of several
//! independent codes back to back, then their outer ones: the core
//! overlaps them (measured in BENCHMARKS.md, "identify close to the
//! limit"). The compression itself is the `sha1` crate's (SHA-NI where the
//! CPU has it, portable code elsewhere); this module only lays out the
//! HMAC blocks of RFC 2104 around it, and the tests hold it to the `hmac`
//! crate and the RFC 4226 vectors.

use sha1::Digest;
use sha1::digest::generic_array::GenericArray;
use zeroize::{Zeroize, ZeroizeOnDrop};

const BLOCK: usize = 64;

/// SHA-1's initial state (FIPS 180-4 §5.3.1).
const INITIAL: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];

/// The two SHA-1 states of an HMAC key, pads absorbed (40 bytes).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Sha1Pads {
    inner: [u32; 5],
    outer: [u32; 5],
}

fn compress(state: &mut [u32; 5], block: &[u8; BLOCK]) {
    sha1::compress(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

impl Sha1Pads {
    /// Keys HMAC-SHA-1 with `key` (RFC 2104: a key longer than a block is
    /// hashed first).
    pub fn new(key: &[u8]) -> Sha1Pads {
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..20].copy_from_slice(&sha1::Sha1::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut pads = Sha1Pads {
            inner: INITIAL,
            outer: INITIAL,
        };
        block.iter_mut().for_each(|b| *b ^= 0x36);
        compress(&mut pads.inner, &block);
        block.iter_mut().for_each(|b| *b ^= 0x36 ^ 0x5c);
        compress(&mut pads.outer, &block);
        block.zeroize();
        pads
    }

    /// RFC 4226 §5.3 dynamic truncation of HMAC(K, counter).
    #[inline]
    pub fn truncated(&self, counter: u64) -> u32 {
        truncated_batch([(self, counter)])[0]
    }
}

/// The last block of a message of one block (the pad) plus `len` bytes
/// already in `block[..len]`: SHA-1 padding and the length in bits.
#[inline(always)]
fn finish_block(block: &mut [u8; BLOCK], len: usize) {
    block[len] = 0x80;
    let bits = ((BLOCK + len) as u64) * 8;
    block[56..].copy_from_slice(&bits.to_be_bytes());
}

/// The truncated values of `N` independent codes: all inner compressions,
/// then all outer ones, so the CPU has `N` compressions in flight.
#[inline]
pub fn truncated_batch<const N: usize>(jobs: [(&Sha1Pads, u64); N]) -> [u32; N] {
    let mut states = [[0u32; 5]; N];
    for (state, &(pads, counter)) in states.iter_mut().zip(&jobs) {
        let mut block = [0u8; BLOCK];
        block[..8].copy_from_slice(&counter.to_be_bytes());
        finish_block(&mut block, 8);
        *state = pads.inner;
        compress(state, &block);
    }
    for (state, &(pads, _)) in states.iter_mut().zip(&jobs) {
        let mut block = [0u8; BLOCK];
        for (bytes, word) in block.chunks_exact_mut(4).zip(state.iter()) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        finish_block(&mut block, 20);
        *state = pads.outer;
        compress(state, &block);
    }
    states.map(|state| truncate_words(&state))
}

/// RFC 4226 §5.3 dynamic truncation read straight from the digest's
/// big-endian words (the same bytes as serialising them first).
#[inline(always)]
fn truncate_words(words: &[u32; 5]) -> u32 {
    let offset = (words[4] & 0x0f) as usize;
    let pair = (u64::from(words[offset / 4]) << 32) | u64::from(words[offset / 4 + 1]);
    ((pair >> (32 - 8 * (offset % 4))) as u32) & 0x7fff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    fn reference(key: &[u8], counter: u64) -> u32 {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
        mac.update(&counter.to_be_bytes());
        crate::engine::dynamic_truncation(&mac.finalize().into_bytes())
    }

    #[test]
    fn rfc4226_appendix_d() {
        // HOTP values of the RFC's key for counters 0..9, before the modulus.
        let truncated = [
            0x4c93cf18u32,
            0x41397eea,
            0x082fef30,
            0x66ef7655,
            0x61c5938a,
            0x33c083d4,
            0x7256c032,
            0x04e5b397,
            0x2823443f,
            0x2679dc69,
        ];
        let pads = Sha1Pads::new(b"12345678901234567890");
        for (counter, want) in truncated.iter().enumerate() {
            assert_eq!(pads.truncated(counter as u64), *want, "counter {counter}");
        }
    }

    #[test]
    fn truncation_reads_every_offset_like_the_byte_form() {
        let pads = Sha1Pads::new(b"offsets");
        let mut offsets_seen = [false; 16];
        for counter in 0..400u64 {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"offsets").unwrap();
            mac.update(&counter.to_be_bytes());
            let digest = mac.finalize().into_bytes();
            offsets_seen[usize::from(digest[19] & 0x0f)] = true;
            assert_eq!(pads.truncated(counter), reference(b"offsets", counter));
        }
        assert!(
            offsets_seen.iter().all(|&seen| seen),
            "not every offset was tried"
        );
    }

    #[test]
    fn equals_the_hmac_crate_for_every_key_length_and_batch_order() {
        // Key lengths around the block size, where RFC 2104 hashes the key.
        for len in [0usize, 1, 20, 32, 63, 64, 65, 100, 200] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let pads = Sha1Pads::new(&key);
            let other = Sha1Pads::new(b"another key");
            for counter in [0u64, 1, 56_666_666, u64::MAX] {
                let batch = truncated_batch([
                    (&pads, counter),
                    (&other, counter ^ 1),
                    (&pads, counter.wrapping_add(1)),
                ]);
                assert_eq!(batch[0], reference(&key, counter), "key length {len}");
                assert_eq!(batch[1], reference(b"another key", counter ^ 1));
                assert_eq!(batch[2], reference(&key, counter.wrapping_add(1)));
            }
        }
    }
}

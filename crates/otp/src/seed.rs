//! New secrets from the operating system's random number generator.

use crate::params::Algorithm;
use crate::secret::Secret;

/// The largest seed Token2 programmable tokens take (63 bytes, see the
/// device protocol notes); larger seeds cannot be burned.
pub const TOKEN2_MAX_SEED_BYTES: usize = 63;

/// RFC 4226 §4 requires at least 128 bits and recommends 160.
pub const MIN_RECOMMENDED_BYTES: usize = 16;

/// The largest seed we generate: far beyond any use, small enough to print.
pub const MAX_SEED_BYTES: usize = 1024;

/// The natural seed size for an algorithm: its hash output size, 20, 32 or
/// 64 bytes (the sizes RFC 6238's reference vectors use).
pub fn default_len(algorithm: Algorithm) -> usize {
    algorithm.output_len()
}

/// Why a seed could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    #[error("a seed needs 1 to {MAX_SEED_BYTES} bytes, not {0}")]
    Size(usize),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// A fresh random secret of `bytes` bytes from the OS CSPRNG.
pub fn generate(bytes: usize) -> Result<Secret, SeedError> {
    if bytes == 0 || bytes > MAX_SEED_BYTES {
        return Err(SeedError::Size(bytes));
    }
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| SeedError::Random(e.to_string()))?;
    Ok(Secret::from_bytes(buffer))
}

/// Advice worth printing about a seed size, if any.
pub fn size_warning(bytes: usize) -> Option<String> {
    if bytes > TOKEN2_MAX_SEED_BYTES {
        Some(format!(
            "a {bytes}-byte seed is longer than the {TOKEN2_MAX_SEED_BYTES} bytes Token2 hardware tokens accept"
        ))
    } else if bytes < MIN_RECOMMENDED_BYTES {
        Some(format!(
            "a {bytes}-byte seed is shorter than the 16 bytes (128 bits) RFC 4226 requires"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_randomness() {
        let a = generate(20).unwrap();
        let b = generate(20).unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b, "two 160-bit seeds from a CSPRNG must differ");
        assert_eq!(generate(0).unwrap_err(), SeedError::Size(0));
        assert_eq!(generate(1025).unwrap_err(), SeedError::Size(1025));
        assert_eq!(default_len(Algorithm::Sha512), 64);
        assert!(size_warning(64).unwrap().contains("63 bytes"));
        assert!(size_warning(10).unwrap().contains("RFC 4226"));
        assert_eq!(size_warning(32), None);
    }
}

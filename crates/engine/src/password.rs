//! Password hashes for the engine's `UserNames` attribute.
//!
//! Format: `sha256:ROUNDS:SALT_HEX:HASH_HEX`, an iterated, salted SHA-256.
//! main.cf never holds a clear-text password; `haven engine hash-password`
//! makes a hash to paste into it.

use sha2::{Digest, Sha256};

const ROUNDS: u32 = 20_000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn derive(salt: &[u8], password: &str, rounds: u32) -> [u8; 32] {
    let mut digest: [u8; 32] = Sha256::new()
        .chain_update(salt)
        .chain_update(password.as_bytes())
        .finalize()
        .into();
    for _ in 1..rounds {
        digest = Sha256::new()
            .chain_update(digest)
            .chain_update(salt)
            .finalize()
            .into();
    }
    digest
}

/// Hashes a password with a fresh salt from the OS's random source.
pub fn hash(password: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    let digest = derive(&salt, password, ROUNDS);
    Ok(format!("sha256:{ROUNDS}:{}:{}", hex(&salt), hex(&digest)))
}

/// Whether `password` matches a stored hash. A malformed hash matches
/// nothing.
pub fn verify(stored: &str, password: &str) -> bool {
    let mut parts = stored.split(':');
    let (Some("sha256"), Some(rounds), Some(salt), Some(expected), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(rounds), Some(salt), Some(expected)) =
        (rounds.parse::<u32>(), unhex(salt), unhex(expected))
    else {
        return false;
    };
    if rounds == 0 || rounds > 10_000_000 {
        return false;
    }
    let digest = derive(&salt, password, rounds);
    // Constant-time comparison.
    expected.len() == digest.len()
        && expected
            .iter()
            .zip(digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("s3cret").unwrap();
        assert!(verify(&h, "s3cret"));
        assert!(!verify(&h, "s3cret "));
        assert!(!verify(&h, ""));
        assert_ne!(hash("s3cret").unwrap(), h, "salts differ");
    }

    #[test]
    fn malformed_hashes_match_nothing() {
        for bad in [
            "",
            "s3cret",
            "sha256:1:zz:00",
            "md5:1:00:00",
            "sha256:0:00:00",
            "sha256:1:00",
        ] {
            assert!(!verify(bad, "s3cret"), "{bad}");
        }
    }
}

//! Vault tokens, key ids and request ids: random from the OS, tokens stored only as hashes.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use secrecy::SecretString;

/// Prefix of every vault token the broker prints.
pub const TOKEN_PREFIX: &str = "vk_";

/// Fills `N` bytes from the operating system's RNG.
fn os_random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// A fresh vault token: `vk_` and 32 random bytes in hex.
pub fn new_token() -> Result<SecretString, getrandom::Error> {
    Ok(SecretString::from(format!(
        "{TOKEN_PREFIX}{}",
        hex::encode(os_random::<32>()?)
    )))
}

/// A fresh key id: `key_` and 16 random bytes in hex. Not a secret.
pub fn new_key_id() -> Result<String, getrandom::Error> {
    Ok(format!("key_{}", hex::encode(os_random::<16>()?)))
}

/// A fresh role token: `rt_` and 32 random bytes in hex.
pub fn new_role_token() -> Result<SecretString, getrandom::Error> {
    Ok(SecretString::from(format!(
        "rt_{}",
        hex::encode(os_random::<32>()?)
    )))
}

/// A fresh role token id: `rtok_` and 12 random bytes in hex. Not a secret.
pub fn new_role_token_id() -> Result<String, getrandom::Error> {
    Ok(format!("rtok_{}", hex::encode(os_random::<12>()?)))
}

/// A fresh request id: 16 random bytes in hex. Not a secret: it joins a
/// money request's audit row written before forwarding to its answer.
pub fn new_request_id() -> Result<String, getrandom::Error> {
    Ok(hex::encode(os_random::<16>()?))
}

/// SHA-256 of a token, in hex: what the database stores and looks up by.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two secrets in time independent of where they differ and of their lengths.
pub fn secrets_match(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    given.ct_eq(&expected).into()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hash_stably() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert!(a.expose_secret().starts_with(TOKEN_PREFIX));
        assert_eq!(a.expose_secret().len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(token_hash(a.expose_secret()), token_hash(a.expose_secret()));
        assert_ne!(token_hash(a.expose_secret()), token_hash(b.expose_secret()));
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(secrets_match("admin", "admin"));
        assert!(!secrets_match("admin", "admin2"));
        assert!(!secrets_match("", "admin"));
    }
}

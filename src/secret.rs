//! Secrets in memory: passwords, resume tokens and the session relay key (review C13).
//!
//! Each type here prints as `…` in `Debug` (derived `Debug` of a request or event, or a
//! `tracing` field with `?`, never shows the secret), wipes its bytes when dropped
//! (`zeroize`), and keeps the wire format of the plain value it replaces (a JSON
//! string; a base64 string for a key), so old and new builds still talk. Reading the
//! secret is explicit: [`SecretString::expose_secret`], [`SecretKey32::expose_secret`].
//!
//! Why not the `secrecy` crate: its `SecretString` has no `Serialize` and no `PartialEq`
//! on purpose, and the control messages need both (they are sent, and compared in
//! tests). The wiping is the `zeroize` crate's; equality is constant time (`subtle`).
//!
//! What this does not cover: copies the JSON parser or the Noise buffers make on the
//! way in and out, and the relay key once it is handed to the relay as bytes.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::proto::control::Key32;

/// A password or token. Serialised as the plain string.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(secret: String) -> SecretString {
        SecretString(secret)
    }

    /// The secret itself, for the one place that needs it (hashing, sending).
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> SecretString {
        SecretString(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> SecretString {
        SecretString(s.to_string())
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(…)")
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &SecretString) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for SecretString {}

/// A 32-byte symmetric key (the session's relay key). Serialised as base64, like
/// [`Key32`].
#[derive(Clone)]
pub struct SecretKey32([u8; 32]);

impl SecretKey32 {
    pub fn new(bytes: [u8; 32]) -> SecretKey32 {
        SecretKey32(bytes)
    }

    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for SecretKey32 {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretKey32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey32(…)")
    }
}

impl PartialEq for SecretKey32 {
    fn eq(&self, other: &SecretKey32) -> bool {
        self.0[..].ct_eq(&other.0[..]).into()
    }
}

impl Eq for SecretKey32 {}

impl Serialize for SecretKey32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(Key32(self.0).to_base64());
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for SecretKey32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        let mut key =
            Key32::from_base64(&text).ok_or_else(|| serde::de::Error::custom("expected a base64 32-byte key"))?;
        let secret = SecretKey32(key.0);
        key.0.zeroize();
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_and_the_wire_format_is_the_plain_value() {
        let s = SecretString::from("hunter2hunter2");
        assert_eq!(format!("{s:?}"), "SecretString(…)");
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""hunter2hunter2""#);
        let back: SecretString = serde_json::from_str(r#""hunter2hunter2""#).unwrap();
        assert_eq!(back, s);
        assert_ne!(back, SecretString::from("hunter3hunter3"));

        let k = SecretKey32::new([7; 32]);
        assert_eq!(format!("{k:?}"), "SecretKey32(…)");
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, serde_json::to_string(&Key32([7; 32])).unwrap());
        assert_eq!(serde_json::from_str::<SecretKey32>(&json).unwrap(), k);
        assert!(serde_json::from_str::<SecretKey32>(r#""short""#).is_err());
    }
}

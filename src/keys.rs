//! X25519 static keys on disk: the hub's key and each node's device key.
//!
//! A key file holds the base64 private key and a newline, mode 0600, as `wg genkey`
//! writes it. The same key is the node's Noise static key on the control channel and
//! its WireGuard static key on the data plane.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::proto::control::Key32;

/// The secret half is wiped when the pair is dropped (x25519-dalek's `zeroize`), and
/// `Debug` shows the public half only.
pub struct KeyPair {
    pub secret: StaticSecret,
    pub public: PublicKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyPair {{ public: {}, secret: … }}",
            self.public_key32().to_base64()
        )
    }
}

impl KeyPair {
    pub fn generate() -> KeyPair {
        let secret = StaticSecret::random_from_rng(rand::rngs::OsRng);
        let public = PublicKey::from(&secret);
        KeyPair { secret, public }
    }

    pub fn from_secret_bytes(mut bytes: [u8; 32]) -> KeyPair {
        let secret = StaticSecret::from(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        let public = PublicKey::from(&secret);
        KeyPair { secret, public }
    }

    pub fn public_key32(&self) -> Key32 {
        Key32(*self.public.as_bytes())
    }

    /// A copy of the secret key, wiped when the caller drops it.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// Loads the key at `path`, creating it (and its directory) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<KeyPair> {
        if path.exists() {
            return Self::load(path);
        }
        let pair = Self::generate();
        pair.save(path)?;
        tracing::info!(path = %path.display(), public_key = %pair.public_key32().to_base64(), "generated a new key");
        Ok(pair)
    }

    /// Loads an existing key file, refusing one that others can read.
    pub fn load(path: &Path) -> Result<KeyPair> {
        let meta = fs::metadata(path).with_context(|| format!("cannot read key file {}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "key file {} is readable by other users (mode {:o}); run `chmod 600 {}`",
                path.display(),
                meta.permissions().mode() & 0o777,
                path.display()
            );
        }
        let text = Zeroizing::new(
            fs::read_to_string(path).with_context(|| format!("cannot read key file {}", path.display()))?,
        );
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .unwrap_or_default(),
        );
        let bytes = <[u8; 32]>::try_from(&bytes[..])
            .ok()
            .with_context(|| format!("key file {} does not hold a base64 32-byte key", path.display()))?;
        Ok(Self::from_secret_bytes(bytes))
    }

    /// Writes the key with mode 0600, atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut line = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&self.secret_bytes()[..]));
        line.push('\n');
        crate::util::write_atomic(path, line.as_bytes(), 0o600)
            .with_context(|| format!("cannot write key file {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_same_key_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/device.key");
        let a = KeyPair::load_or_create(&path).unwrap();
        let b = KeyPair::load_or_create(&path).unwrap();
        assert_eq!(a.public.as_bytes(), b.public.as_bytes());
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn refuses_world_readable_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        KeyPair::generate().save(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyPair::load(&path).err().unwrap().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        fs::write(&path, "not a key\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(KeyPair::load(&path).is_err());
    }
}

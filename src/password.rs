//! Passwords: argon2id hashing, verification, and reading them from a person or a file.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context, Result};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Hashes `password` with argon2id and a random salt (PHC string format).
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// Checks `password` against a PHC hash. A malformed hash verifies nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a password nobody knows, verified against when the account does not
/// exist, so that "no such account" costs as much time as "wrong password".
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("mcvpn: no such account, nothing to match"))
}

/// Reads a password from `file` (first line) or, without one, from the terminal.
pub fn read(file: Option<&Path>, prompt: &str) -> Result<String> {
    let password = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the password file {}", path.display()))?;
            text.lines().next().unwrap_or("").to_string()
        }
        None => {
            if !std::io::stdin().is_terminal() {
                bail!("no terminal to ask for the password; pass --password-file FILE");
            }
            rpassword::prompt_password(prompt).context("cannot read the password from the terminal")?
        }
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_same_password() {
        let h = hash("correct horse battery staple");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stapl", &h));
        assert!(!verify("anything", "not a phc string"));
    }

    #[test]
    fn reads_first_line_of_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\nignored\n").unwrap();
        assert_eq!(read(Some(&p), "").unwrap(), "s3cret");
        std::fs::write(&p, "\n").unwrap();
        assert!(read(Some(&p), "").is_err());
    }
}

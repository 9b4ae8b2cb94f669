//! Passwords: argon2id hashing, verification, and reading them from a person or a file.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context, Result};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Argon2 runs in this process so far (hashes and verifications): the figure the login
/// flood test (`tests/login_flood.rs`) checks against the limiter's allowance.
static ARGON2_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many Argon2 hashes and verifications this process has run.
pub fn argon2_runs() -> u64 {
    ARGON2_RUNS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Makes Argon2's working memory (19 MiB a hash with the default parameters) go back to
/// the system when the hash is done. glibc's malloc otherwise raises its mmap threshold
/// to the size of the first such block freed, and carves every later one from the
/// hashing thread's arena, which keeps it: the hub hashes on the blocking pool, whose
/// threads each have an arena of their own (up to 8 per core), so a few dozen password
/// logins left 190 MiB resident for good (issue 13, measured with `scripts/load.sh`).
/// A fixed threshold of 1 MiB keeps such blocks mapped on their own, unmapped on free.
fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes the allocator's parameters; 1 MiB is in range.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
        });
    }
}

/// Hashes `password` with argon2id and a random salt (PHC string format).
pub fn hash(password: &str) -> String {
    return_large_blocks();
    ARGON2_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// Checks `password` against a PHC hash. A malformed hash verifies nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => {
            return_large_blocks();
            ARGON2_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
        }
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

/// Minimum password length (issue: "minimum length 12").
pub const MIN_LENGTH: usize = 12;

/// Passwords too common to allow even at 12 characters and more: the long entries of
/// the public most-common-password lists, and keyboard and counting patterns.
const COMMON: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "123456789abc",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "abcdefghijkl",
    "abc123abc123",
    "administrator",
    "iloveyou1234",
    "letmeinletmein",
    "passwordpassword",
    "password1234",
    "password12345",
    "password123456",
    "password123!",
    "password!123",
    "passw0rd1234",
    "p@ssw0rd1234",
    "p@ssword1234",
    "qwerty123456",
    "qwertyuiop12",
    "qwertyuiopas",
    "qwertyuiop[]",
    "qazwsxedcrfv",
    "zaq12wsxcde3",
    "trustno1trustno1",
    "welcome12345",
    "welcome123456",
    "changeme1234",
    "monkey123456",
    "football1234",
    "baseball1234",
    "sunshine1234",
    "princess1234",
    "superman1234",
    "starwars1234",
    "dragon123456",
    "master123456",
    "111111111111",
    "000000000000",
    "123123123123",
    "987654321098",
    "asdfghjkl123",
    "asdfasdfasdf",
    "qwerasdfzxcv",
    "mcvpnpassword",
    "magicconnect",
    "correcthorsebatterystaple",
];

/// Checks the password policy: at least [`MIN_LENGTH`] characters, not the user name,
/// not a well-known common password. The error says what to change.
pub fn check_policy(user: &str, password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LENGTH {
        return Err(format!("the password must have at least {MIN_LENGTH} characters"));
    }
    let lower = password.to_lowercase();
    if lower == user.to_lowercase() || lower.contains(&user.to_lowercase()) && lower.len() <= user.len() + 2 {
        return Err("the password must not be the account name".into());
    }
    let squashed: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    if COMMON.contains(&squashed.as_str()) {
        return Err("that password is one of the most common ones; choose another".into());
    }
    if squashed.chars().all(|c| squashed.starts_with(c)) {
        return Err("the password must not repeat a single character".into());
    }
    Ok(())
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn policy_rules() {
        assert!(check_policy("alice", "short").unwrap_err().contains("12"));
        assert!(check_policy("alice.example", "ALICE.EXAMPLE").is_err());
        assert!(check_policy("alice", "alice1").is_err());
        assert!(check_policy("alice", "password1234").unwrap_err().contains("common"));
        assert!(check_policy("alice", "Correct Horse Battery Staple").is_err());
        assert!(check_policy("alice", "aaaaaaaaaaaaaa").is_err());
        assert!(check_policy("alice", "alice-password-1").is_ok());
        assert!(check_policy("alice", "violet tuba mango 7").is_ok());
    }
}

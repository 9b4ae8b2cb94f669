//! Time-based one-time codes (RFC 6238) for the console's optional second factor (issue
//! 14): the secret, the codes an authenticator app shows (SHA-1, 6 digits, 30 s, as
//! every app understands), the `otpauth://` link and its QR code as a PNG.
//!
//! Pure: the caller passes the time, and keeps the last accepted step (the store does,
//! atomically) so that no code is accepted twice.

use rand::RngCore;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

/// Digits of a code.
pub const DIGITS: usize = 6;
/// Seconds a code stands for.
pub const STEP_S: u64 = 30;
/// Steps a code may be early or late (a phone's clock, the time to type it).
pub const SKEW_STEPS: i64 = 1;
/// The issuer the authenticator app shows.
pub const ISSUER: &str = "mcvpn";
/// Bytes of a new secret: 160 bits, the size RFC 4226 recommends for SHA-1.
const SECRET_BYTES: usize = 20;

/// A fresh random secret, base32 (RFC 4648, no padding) as apps take it by hand.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        SKEW_STEPS as u8,
        STEP_S,
        bytes.to_vec(),
        None,
        String::new(),
    )
    .get_secret_base32()
}

/// The base32 secret `secret` as a generator for `label` (`NAME@CONTRACT`), or why not.
fn generator(secret: &str, label: &str) -> Result<TOTP, String> {
    let bytes = Secret::Encoded(secret.to_string())
        .to_bytes()
        .map_err(|_| "the stored TOTP secret is not base32".to_string())?;
    if bytes.len() < 16 {
        return Err("the TOTP secret is shorter than 128 bits".into());
    }
    // The label must not contain ':' (it separates issuer and account in the link);
    // account and contract names never do (names::check), this is only belt and braces.
    Ok(TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        SKEW_STEPS as u8,
        STEP_S,
        bytes,
        Some(ISSUER.to_string()),
        label.replace(':', "_"),
    ))
}

/// Whether `secret` is a usable base32 secret (as [`new_secret`] makes).
pub fn valid_secret(secret: &str) -> bool {
    generator(secret, "x").is_ok()
}

/// The time step of a Unix time.
pub fn step_of(unix: u64) -> i64 {
    (unix / STEP_S) as i64
}

/// The code for `step` (what the app shows during it).
pub fn code_at(secret: &str, step: i64) -> Result<String, String> {
    Ok(generator(secret, "x")?.generate(step.max(0) as u64 * STEP_S))
}

/// The step of `code` if it is right at `unix` (±[`SKEW_STEPS`]) and later than
/// `after` (the last step accepted): a code is never accepted twice, nor an older one
/// after a newer. `None` for a wrong, malformed, used or stale code.
pub fn accepted_step(secret: &str, code: &str, unix: u64, after: Option<i64>) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = generator(secret, "x").ok()?;
    let now = step_of(unix);
    let mut found = None;
    // Every candidate is computed and compared, in constant time, whatever matched.
    for step in now - SKEW_STEPS..=now + SKEW_STEPS {
        if step < 0 || after.is_some_and(|a| step <= a) {
            continue;
        }
        let expected = totp.generate(step as u64 * STEP_S);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://totp/mcvpn:LABEL?secret=…&issuer=mcvpn` link the QR code holds.
pub fn otpauth_url(secret: &str, label: &str) -> Result<String, String> {
    Ok(generator(secret, label)?.get_url())
}

/// The link as a QR code, a black-on-white greyscale PNG, `scale` pixels a module, with
/// the 4-module quiet zone the standard asks for.
pub fn qr_png(url: &str, scale: usize) -> Result<Vec<u8>, String> {
    let code = qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| format!("the link does not fit a QR code: {e}"))?;
    let modules = code.width();
    let colors = code.to_colors();
    let quiet = 4;
    let scale = scale.max(1);
    let side = (modules + 2 * quiet) * scale;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules, i / modules);
        for dy in 0..scale {
            let row = (my + quiet) * scale + dy;
            let start = row * side + (mx + quiet) * scale;
            pixels[start..start + scale].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, side as u32, side as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(&pixels).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238, appendix B: the SHA-1 secret "12345678901234567890".
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn codes_match_the_rfc_vectors() {
        // 59 s → 94287082, 1111111109 s → 07081804 (8 digits there; the last 6 here).
        assert_eq!(code_at(RFC_SECRET, step_of(59)).unwrap(), "287082");
        assert_eq!(code_at(RFC_SECRET, step_of(1_111_111_109)).unwrap(), "081804");
    }

    #[test]
    fn a_code_is_accepted_within_one_step_and_never_twice() {
        let s = new_secret();
        assert!(valid_secret(&s));
        let t = 1_800_000_000;
        let now = step_of(t);
        let code = code_at(&s, now).unwrap();
        assert_eq!(accepted_step(&s, &code, t, None), Some(now));
        // The phone a step behind or ahead.
        assert_eq!(accepted_step(&s, &code, t + STEP_S, None), Some(now));
        assert_eq!(accepted_step(&s, &code, t - STEP_S, None), Some(now));
        assert_eq!(accepted_step(&s, &code, t + 2 * STEP_S, None), None, "too late");
        // Replay: the step was used; an older step after a newer one neither.
        assert_eq!(accepted_step(&s, &code, t, Some(now)), None);
        let older = code_at(&s, now - 1).unwrap();
        assert_eq!(accepted_step(&s, &older, t, Some(now)), None);
        let next = code_at(&s, now + 1).unwrap();
        assert_eq!(accepted_step(&s, &next, t, Some(now)), Some(now + 1));
        // Malformed.
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６"] {
            assert_eq!(accepted_step(&s, bad, t, None), None, "{bad:?}");
        }
        assert_eq!(accepted_step("not base32!", &code, t, None), None);
    }

    #[test]
    fn secrets_differ_and_the_link_names_issuer_and_account() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32, "160 bits in base32");
        let url = otpauth_url(&a, "alice@acme").unwrap();
        assert!(url.starts_with("otpauth://totp/mcvpn:alice%40acme?"), "{url}");
        assert!(url.contains(&format!("secret={a}")), "{url}");
        assert!(url.contains("issuer=mcvpn"), "{url}");
        assert!(!valid_secret("AAAA"), "too short");
    }

    #[test]
    fn the_qr_code_is_a_png() {
        let png = qr_png(&otpauth_url(&new_secret(), "alice@acme").unwrap(), 4).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(&png[..]);
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        assert!(info.width >= (21 + 8) * 4);
    }
}

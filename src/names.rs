//! Names people and nodes give: accounts, contracts, targets. One rule, checked by the
//! hub before a login touches the store and by every admin command that creates a name,
//! so that nothing stored or logged can be huge or carry terminal controls (issue 11,
//! item 5; review findings C2 and C9).

/// Longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Checks a name: 1 to [`MAX_NAME_BYTES`] bytes, no control characters (C0, DEL, C1),
/// no other invisible formatting characters (bidirectional overrides, zero-width
/// spaces), no leading or trailing space. The error says what to change; it quotes
/// nothing of the name, which may be hostile.
pub fn check(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("the {what} name is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the {what} name is {} bytes long; at most {MAX_NAME_BYTES} are allowed",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|&c| !printable(c)) {
        return Err(format!(
            "the {what} name contains the unprintable character U+{:04X}; use letters, digits and punctuation",
            c as u32
        ));
    }
    if name.trim() != name {
        return Err(format!("the {what} name starts or ends with a space"));
    }
    Ok(())
}

/// Whether `c` shows as itself: not a control character, nor a format character that
/// changes how the text around it is shown.
fn printable(c: char) -> bool {
    !c.is_control()
        && !matches!(c,
            '\u{00AD}'                      // soft hyphen
            | '\u{061C}'                    // Arabic letter mark
            | '\u{180E}'                    // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}'       // zero-width spaces and joiners, LRM/RLM
            | '\u{2028}'..='\u{202E}'       // line/paragraph separators, bidi embeddings
            | '\u{2060}'..='\u{206F}'       // word joiner, invisible operators, bidi isolates
            | '\u{FEFF}'                    // zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}'       // interlinear annotations
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in [
            "alice",
            "bob.smith@example.co.jp",
            "営業部-田中",
            "office pc 2",
            &"x".repeat(64),
        ] {
            assert_eq!(check("account", n), Ok(()), "{n:?}");
        }
    }

    #[test]
    fn refuses_long_empty_and_unprintable_names() {
        let bad = [
            String::new(),
            "x".repeat(65),
            "あ".repeat(22), // 66 bytes
            "\x1b[2J".into(),
            "alice\r\nbob".into(),
            "tab\there".into(),
            "nul\0".into(),
            "del\x7f".into(),
            "c1\u{9b}31m".into(),
            "rtl\u{202e}gpj.exe".into(),
            "zero\u{200b}width".into(),
            " alice".into(),
            "alice ".into(),
        ];
        for n in bad {
            let e = check("account", &n).unwrap_err();
            assert!(!e.contains('\x1b') && !e.contains('\r'), "{e:?}");
        }
    }
}

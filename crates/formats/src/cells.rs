//! Text cells a spreadsheet would run as a formula (CSV injection).
//!
//! oathdesk's own reports guard such a cell with a leading `'` (the fleet
//! CSVs). A seed file another system reads — the Entra upload CSV,
//! privacyIDEA's and LinOTP's OATH CSV — cannot be changed that way: the
//! `'` would become part of the UPN or serial. Those writers leave such a
//! record out and name it instead; no identity provider takes a UPN or a
//! serial that starts so (Entra's UPNs are letters, digits and
//! `' . - _ ! # ^ ~` before the `@`).

/// Why `cell` would run as a formula when the file is opened in a
/// spreadsheet, if it would: it starts with `=`, `+`, `@`, a tab or a
/// carriage return, or with `-` and holds more than a UPN's characters (a
/// plain `-ops@contoso.com` is a UPN; `-2+3` or `-cmd|' /C calc'!A0` is not).
pub fn formula_start(cell: &str) -> Option<String> {
    let first = cell.chars().next()?;
    let name = match first {
        '=' | '+' | '@' => format!("'{first}'"),
        '\t' => "a tab".to_owned(),
        '\r' => "a carriage return".to_owned(),
        '-' if !cell.chars().all(upn_char) => "'-' with more than a UPN's characters".to_owned(),
        _ => return None,
    };
    Some(format!(
        "starts with {name}, which a spreadsheet would run as a formula"
    ))
}

fn upn_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "'.-_!#^~@".contains(c)
}

#[cfg(test)]
mod tests {
    use super::formula_start;

    #[test]
    fn formulas_are_named_and_plain_text_is_not() {
        for cell in [
            "=HYPERLINK(\"http://x\")",
            "+1+1",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "-2+3",
            "-cmd|' /C calc'!A0",
        ] {
            assert!(formula_start(cell).is_some(), "{cell:?}");
        }
        for cell in [
            "",
            "bob@contoso.com",
            "-ops@contoso.com",
            "o'brien@contoso.com",
            "2100000401",
            "Token2",
            "C202 (classic)",
        ] {
            assert_eq!(formula_start(cell), None, "{cell:?}");
        }
    }
}

//! The RFC 5424 message around an entry's JSON line.
//!
//! `<PRI>1 TIMESTAMP HOSTNAME oathdesk PROCID MSGID [meta sequenceId="SEQ"] JSON`
//!
//! - PRI: the sink's facility (default `authpriv`) × 8 + severity: notice
//!   (5) for what went as asked, warning (4) for a refusal, a forbidden
//!   attempt or an altered row, and for a gap report.
//! - TIMESTAMP: the entry's own time (RFC 3339, UTC), not the sending time:
//!   a retried entry keeps when it happened.
//! - MSGID: the action (`helpdesk.code`), so a syslog filter can pick
//!   actions without parsing JSON.
//! - STRUCTURED-DATA: only the IANA-registered `meta` element with
//!   `sequenceId` = the entry's seq (RFC 5424 §7.3.1), which needs no
//!   private enterprise number.
//! - MSG: the whole [`AuditRecord`](oathdesk_vault::audit::AuditRecord) as
//!   one JSON object, without a BOM (RFC 5424 allows MSG-ANY; a BOM would
//!   stop Splunk's and Sentinel's JSON parsers).
//!
//! Formatted here rather than by a crate: the maintained Rust syslog crates
//! either parse only (`syslog_rfc5424`) or own the socket and logging
//! facade (`syslog`), and neither escapes SD-PARAM values from our own
//! text. The format is small; the tests parse it back field by field.

use crate::spec::Facility;

/// RFC 5424 severities used.
pub const NOTICE: u8 = 5;
pub const WARNING: u8 = 4;

/// What a message needs besides the JSON.
#[derive(Clone, Debug)]
pub struct Header<'a> {
    pub facility: Facility,
    pub severity: u8,
    /// RFC 3339.
    pub timestamp: &'a str,
    pub hostname: &'a str,
    pub procid: u32,
    pub msgid: &'a str,
    /// The entry's seq, for `[meta sequenceId=…]` (none for a gap report).
    pub sequence: Option<i64>,
}

/// One RFC 5424 message (no trailing newline; the transport frames it).
pub fn message(header: &Header<'_>, json: &str) -> String {
    let pri = u16::from(header.facility.code()) * 8 + u16::from(header.severity.min(7));
    // sequenceId is 1 … 2147483647 (RFC 5424 §7.3.1).
    let structured = match header.sequence.filter(|s| (1..=2_147_483_647).contains(s)) {
        Some(seq) => format!("[meta sequenceId=\"{}\"]", sd_param_value(&seq.to_string())),
        None => "-".to_owned(),
    };
    format!(
        "<{pri}>1 {} {} oathdesk {} {} {structured} {json}",
        header_field(header.timestamp, 64),
        header_field(header.hostname, 255),
        header.procid,
        header_field(header.msgid, 32),
    )
}

/// A header field: printable US-ASCII without spaces, at most `limit`
/// characters (RFC 5424 §6); anything else becomes `_`, nothing at all the
/// NILVALUE `-`.
pub fn header_field(text: &str, limit: usize) -> String {
    let field: String = text
        .chars()
        .take(limit)
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .collect();
    if field.is_empty() {
        "-".to_owned()
    } else {
        field
    }
}

/// An SD-PARAM value: `"`, `\` and `]` escaped with a backslash (RFC 5424
/// §6.3.3).
pub fn sd_param_value(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '"' | '\\' | ']') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// This machine's name for HOSTNAME: the kernel's, else `$HOSTNAME`, else
/// the NILVALUE.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "-".to_owned())
}

/// RFC 6587 octet counting: `LENGTH SP MESSAGE`, the length in bytes.
pub fn octet_counted(message: &str) -> String {
    format!("{} {message}", message.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_has_every_rfc_5424_field() {
        let header = Header {
            facility: Facility::AUTHPRIV,
            severity: NOTICE,
            timestamp: "2026-12-04T10:15:11Z",
            hostname: "vault host",
            procid: 42,
            msgid: "helpdesk.code",
            sequence: Some(7),
        };
        assert_eq!(
            message(&header, r#"{"seq":7}"#),
            r#"<85>1 2026-12-04T10:15:11Z vault_host oathdesk 42 helpdesk.code [meta sequenceId="7"] {"seq":7}"#
        );
        let gap = Header {
            sequence: None,
            severity: WARNING,
            facility: Facility::named("local0").unwrap(),
            msgid: "",
            ..header
        };
        assert!(
            message(&gap, "{}")
                .starts_with("<132>1 2026-12-04T10:15:11Z vault_host oathdesk 42 - - {}")
        );
    }

    #[test]
    fn sd_values_and_fields_are_escaped() {
        assert_eq!(sd_param_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(header_field("é x", 32), "__x");
        assert_eq!(header_field(&"a".repeat(40), 32).len(), 32);
        assert_eq!(octet_counted("<85>1 é"), "8 <85>1 é");
    }
}

//! What a notice says: a plain-English mail and the webhook document.
//! Pure functions: the same notice always gives the same bytes.
//!
//! The mail is read by someone who may have been impersonated, so it says
//! plainly what happened, when, who did it, and what to do if it was not
//! them. Its values are put on one line each: a display name or a reason
//! typed by a caller must not be able to add a line that reads like ours
//! ("Approved by your manager").

use serde::Serialize;

use crate::notice::{Event, Notice};

/// The version of the webhook document; it changes only if a field is
/// removed or changes meaning. New events may appear within a version.
pub const WEBHOOK_VERSION: u32 = 1;

/// The keys of the webhook document, in the order they are written. Every
/// key is always present; an unset optional field is `null`.
pub const WEBHOOK_FIELDS: [&str; 13] = [
    "version",
    "id",
    "event",
    "at",
    "user_upn",
    "user_display_name",
    "operator",
    "approver",
    "ticket",
    "method",
    "reason",
    "organisation",
    "report_to",
];

/// A mail to hand to whatever sends mail (Graph `sendMail`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
}

/// The mail that tells the user what the helpdesk did.
pub fn render_mail(notice: &Notice) -> Mail {
    let organisation = notice.organisation.as_deref().map(one_line);
    let action = match notice.event {
        Event::CodeReleased => "gave out a sign-in code for your account",
        Event::CodeRefused => "refused to give out a sign-in code for your account",
        Event::TemporaryAccessPassIssued => "issued a Temporary Access Pass for your account",
        Event::ApprovalRequested => {
            "asked for approval to give out a sign-in code for your account"
        }
    };
    let subject = match &organisation {
        Some(organisation) => format!("{organisation}: the helpdesk {action}"),
        None => format!("The helpdesk {action}"),
    };

    let happened = match notice.event {
        Event::CodeReleased => {
            "The helpdesk gave a sign-in code for your account to a caller who said they were you. \
             With it, the caller can complete a sign-in as you."
        }
        Event::CodeRefused => {
            "A caller who said they were you asked the helpdesk for a sign-in code for your account. \
             The helpdesk refused: no code was given out."
        }
        Event::TemporaryAccessPassIssued => {
            "The helpdesk issued a Temporary Access Pass for your account to a caller who said they \
             were you. Until it expires, the pass lets its holder sign in as you and register new \
             sign-in methods."
        }
        Event::ApprovalRequested => {
            "A caller who said they were you asked the helpdesk for a sign-in code for your account. \
             The release waits for a second operator's approval: no code was given out yet."
        }
    };
    let approver_label = match notice.event {
        Event::ApprovalRequested => "Approval asked of",
        _ => "Approved by",
    };
    let name = one_line(
        notice
            .user_display_name
            .as_deref()
            .filter(|name| !name.trim().is_empty())
            .unwrap_or(&notice.user_upn),
    );

    let mut text = format!("Hello {name},\n\n{happened}\n\n");
    let mut line = |label: &str, value: &str| {
        text.push_str(label);
        text.push_str(": ");
        text.push_str(&one_line(value));
        text.push('\n');
    };
    line("When", &when(notice.at));
    line("Account", &notice.user_upn);
    line("Helpdesk operator", &notice.operator);
    let optional = [
        (approver_label, &notice.approver),
        ("Ticket", &notice.ticket),
        ("Caller verified by", &notice.method),
        ("Reason given", &notice.reason),
    ];
    for (label, value) in optional {
        if let Some(value) = value {
            line(label, value);
        }
    }
    line("Reference", &notice.id);

    text.push_str("\nIf this was you, there is nothing to do.\n");
    match &notice.report_to {
        Some(report_to) => {
            text.push_str("If you did not call the helpdesk, report it right away: ");
            text.push_str(&one_line(report_to));
            text.push('\n');
        }
        None => text.push_str(
            "If you did not call the helpdesk, report it to your IT department right away.\n",
        ),
    }
    text.push_str("Someone who pretends to be you may be trying to get into your account.\n\n");
    match &organisation {
        Some(organisation) => {
            text.push_str("Sent by oathdesk for ");
            text.push_str(organisation);
            text.push_str(".\n");
        }
        None => text.push_str("Sent by oathdesk.\n"),
    }
    Mail { subject, text }
}

/// The webhook document: `{"version":1, "id":…, …}` with the keys of
/// [`WEBHOOK_FIELDS`] in that order, values exactly as in the notice.
pub fn webhook_body(notice: &Notice) -> Vec<u8> {
    #[derive(Serialize)]
    struct Document<'a> {
        version: u32,
        #[serde(flatten)]
        notice: &'a Notice,
    }
    serde_json::to_vec(&Document {
        version: WEBHOOK_VERSION,
        notice,
    })
    // Strings, integers and unit enum variants: serde_json cannot fail on them.
    .expect("a notice always serialises to JSON")
}

/// A time for a reader: "Tuesday 14 November 2023, 22:13 UTC" and its
/// RFC 3339 form, which a reader can paste into a report unambiguously.
/// A time outside the calendar years 1–9999 is given as Unix seconds.
fn when(at: u64) -> String {
    let date = i64::try_from(at)
        .ok()
        .and_then(|at| time::OffsetDateTime::from_unix_timestamp(at).ok());
    let Some(date) = date else {
        return format!("Unix time {at}");
    };
    let rfc3339 = date
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("Unix time {at}"));
    format!(
        "{weekday} {day} {month} {year}, {hour:02}:{minute:02} UTC ({rfc3339})",
        weekday = date.weekday(),
        day = date.day(),
        month = date.month(),
        year = date.year(),
        hour = date.hour(),
        minute = date.minute(),
    )
}

/// A value on one line: control characters (line breaks included) and the
/// Unicode bidirectional overrides (which can make text display in another
/// order than it reads) become spaces.
fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            let bidi = matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || bidi || c == '\u{2028}' || c == '\u{2029}' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2023-11-14 22:13:20 UTC, a Tuesday.
    const AT: u64 = 1_700_000_000;

    fn full(event: Event) -> Notice {
        Notice {
            id: "d6f1c3a0-5b7e-4c1e-9f0a-2b3c4d5e6f70".into(),
            event,
            at: AT,
            user_upn: "alice@contoso.com".into(),
            user_display_name: Some("Alice Example".into()),
            operator: "bob".into(),
            approver: Some("carol".into()),
            ticket: Some("INC-1234".into()),
            method: Some("callback".into()),
            reason: Some("caller could not answer the callback".into()),
            organisation: Some("Contoso IT".into()),
            report_to: Some("+1 555 0100 or security@contoso.com".into()),
        }
    }

    #[test]
    fn code_released_mail() {
        let mut notice = full(Event::CodeReleased);
        notice.reason = None;
        let mail = render_mail(&notice);
        assert_eq!(
            mail.subject,
            "Contoso IT: the helpdesk gave out a sign-in code for your account"
        );
        assert_eq!(
            mail.text,
            "Hello Alice Example,\n\
             \n\
             The helpdesk gave a sign-in code for your account to a caller who said they were you. \
             With it, the caller can complete a sign-in as you.\n\
             \n\
             When: Tuesday 14 November 2023, 22:13 UTC (2023-11-14T22:13:20Z)\n\
             Account: alice@contoso.com\n\
             Helpdesk operator: bob\n\
             Approved by: carol\n\
             Ticket: INC-1234\n\
             Caller verified by: callback\n\
             Reference: d6f1c3a0-5b7e-4c1e-9f0a-2b3c4d5e6f70\n\
             \n\
             If this was you, there is nothing to do.\n\
             If you did not call the helpdesk, report it right away: +1 555 0100 or security@contoso.com\n\
             Someone who pretends to be you may be trying to get into your account.\n\
             \n\
             Sent by oathdesk for Contoso IT.\n"
        );
    }

    #[test]
    fn code_refused_mail() {
        let mut notice = full(Event::CodeRefused);
        notice.approver = None;
        let mail = render_mail(&notice);
        assert_eq!(
            mail.subject,
            "Contoso IT: the helpdesk refused to give out a sign-in code for your account"
        );
        assert_eq!(
            mail.text,
            "Hello Alice Example,\n\
             \n\
             A caller who said they were you asked the helpdesk for a sign-in code for your account. \
             The helpdesk refused: no code was given out.\n\
             \n\
             When: Tuesday 14 November 2023, 22:13 UTC (2023-11-14T22:13:20Z)\n\
             Account: alice@contoso.com\n\
             Helpdesk operator: bob\n\
             Ticket: INC-1234\n\
             Caller verified by: callback\n\
             Reason given: caller could not answer the callback\n\
             Reference: d6f1c3a0-5b7e-4c1e-9f0a-2b3c4d5e6f70\n\
             \n\
             If this was you, there is nothing to do.\n\
             If you did not call the helpdesk, report it right away: +1 555 0100 or security@contoso.com\n\
             Someone who pretends to be you may be trying to get into your account.\n\
             \n\
             Sent by oathdesk for Contoso IT.\n"
        );
    }

    /// The bare minimum: no optional field, so the texts fall back.
    #[test]
    fn temporary_access_pass_mail_without_optional_fields() {
        let notice = Notice::new(
            "tap-42",
            Event::TemporaryAccessPassIssued,
            0,
            "dave@fabrikam.example",
            "erin",
        );
        let mail = render_mail(&notice);
        assert_eq!(
            mail.subject,
            "The helpdesk issued a Temporary Access Pass for your account"
        );
        assert_eq!(
            mail.text,
            "Hello dave@fabrikam.example,\n\
             \n\
             The helpdesk issued a Temporary Access Pass for your account to a caller who said they \
             were you. Until it expires, the pass lets its holder sign in as you and register new \
             sign-in methods.\n\
             \n\
             When: Thursday 1 January 1970, 00:00 UTC (1970-01-01T00:00:00Z)\n\
             Account: dave@fabrikam.example\n\
             Helpdesk operator: erin\n\
             Reference: tap-42\n\
             \n\
             If this was you, there is nothing to do.\n\
             If you did not call the helpdesk, report it to your IT department right away.\n\
             Someone who pretends to be you may be trying to get into your account.\n\
             \n\
             Sent by oathdesk.\n"
        );
    }

    #[test]
    fn approval_requested_mail() {
        let mut notice = full(Event::ApprovalRequested);
        notice.reason = None;
        notice.report_to = None;
        let mail = render_mail(&notice);
        assert_eq!(
            mail.subject,
            "Contoso IT: the helpdesk asked for approval to give out a sign-in code for your account"
        );
        assert_eq!(
            mail.text,
            "Hello Alice Example,\n\
             \n\
             A caller who said they were you asked the helpdesk for a sign-in code for your account. \
             The release waits for a second operator's approval: no code was given out yet.\n\
             \n\
             When: Tuesday 14 November 2023, 22:13 UTC (2023-11-14T22:13:20Z)\n\
             Account: alice@contoso.com\n\
             Helpdesk operator: bob\n\
             Approval asked of: carol\n\
             Ticket: INC-1234\n\
             Caller verified by: callback\n\
             Reference: d6f1c3a0-5b7e-4c1e-9f0a-2b3c4d5e6f70\n\
             \n\
             If this was you, there is nothing to do.\n\
             If you did not call the helpdesk, report it to your IT department right away.\n\
             Someone who pretends to be you may be trying to get into your account.\n\
             \n\
             Sent by oathdesk for Contoso IT.\n"
        );
    }

    #[test]
    fn webhook_body_is_pinned() {
        let body = webhook_body(&full(Event::CodeReleased));
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"version":1,"id":"d6f1c3a0-5b7e-4c1e-9f0a-2b3c4d5e6f70","event":"code_released","at":1700000000,"user_upn":"alice@contoso.com","user_display_name":"Alice Example","operator":"bob","approver":"carol","ticket":"INC-1234","method":"callback","reason":"caller could not answer the callback","organisation":"Contoso IT","report_to":"+1 555 0100 or security@contoso.com"}"#
        );
        let bare = webhook_body(&Notice::new("x", Event::CodeRefused, 5, "u@x", "op"));
        assert_eq!(
            String::from_utf8(bare).unwrap(),
            r#"{"version":1,"id":"x","event":"code_refused","at":5,"user_upn":"u@x","user_display_name":null,"operator":"op","approver":null,"ticket":null,"method":"#.to_owned()
                + r#"null,"reason":null,"organisation":null,"report_to":null}"#
        );
    }

    #[test]
    fn a_value_cannot_add_a_line_to_the_mail() {
        let mut notice = full(Event::CodeRefused);
        notice.user_display_name = Some("Alice\nApproved by: your manager".into());
        notice.reason = Some("none\r\nIf this was you, call +1 555 6666\u{202E}".into());
        notice.organisation = Some("Contoso\nIT".into());
        let mail = render_mail(&notice);
        assert!(!mail.subject.contains('\n'), "{:?}", mail.subject);
        assert!(
            mail.text
                .starts_with("Hello Alice Approved by: your manager,\n")
        );
        assert!(
            mail.text
                .contains("\nReason given: none  If this was you, call +1 555 6666 \n"),
            "{}",
            mail.text
        );
        assert!(!mail.text.contains('\r') && !mail.text.contains('\u{202E}'));
        assert_eq!(
            mail.text.lines().filter(|l| l.starts_with("If ")).count(),
            2
        );
    }

    #[test]
    fn a_time_beyond_the_calendar_is_given_in_seconds() {
        let notice = Notice::new("x", Event::CodeReleased, u64::MAX, "u@x", "op");
        assert!(
            render_mail(&notice)
                .text
                .contains("\nWhen: Unix time 18446744073709551615\n")
        );
    }

    // ----- property: nothing that is not in the notice ------------------

    /// Every word the templates themselves use. A word in a mail that is
    /// neither here, nor a piece of a date, nor in a value of the notice,
    /// came from somewhere it should not have.
    const TEMPLATE: &str = "Hello The the helpdesk gave give out a sign-in code for your account to caller \
        who said they were you With it can complete as A asked refused no was given issued \
        Temporary Access Pass Until expires pass lets its holder sign in and register new methods \
        release waits second operator's approval yet for When UTC Account Helpdesk operator \
        Approved by Approval of Ticket Caller verified Reason Reference If this there is nothing \
        do did not call report right away IT department Someone pretends be may trying get into \
        Sent oathdesk Unix time \
        Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April \
        May June July August September October November December";

    fn words(text: &str) -> impl Iterator<Item = &str> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
    }

    /// A piece of "2023-11-14T22:13:20Z" or "22:13": short digit runs, maybe
    /// joined by the `T` or ended by the `Z` of RFC 3339. A code (six to
    /// eight digits) is not one.
    fn date_piece(word: &str) -> bool {
        let word = word.strip_suffix('Z').unwrap_or(word);
        word.split('T')
            .all(|run| (1..=4).contains(&run.len()) && run.bytes().all(|b| b.is_ascii_digit()))
    }

    fn values(notice: &Notice) -> Vec<String> {
        let mut values = vec![
            notice.id.clone(),
            notice.user_upn.clone(),
            notice.operator.clone(),
            notice.at.to_string(),
        ];
        values.extend(
            [
                &notice.user_display_name,
                &notice.approver,
                &notice.ticket,
                &notice.method,
                &notice.reason,
                &notice.organisation,
                &notice.report_to,
            ]
            .into_iter()
            .flatten()
            .cloned(),
        );
        values
    }

    fn value() -> impl Strategy<Value = String> {
        // Letters, digits (codes are digits), punctuation, line breaks, a
        // bidi override and non-ASCII letters.
        "[a-zA-Z0-9 @._+:\\-\n\r\t\u{202E}éßж]{0,20}"
    }

    fn notice() -> impl Strategy<Value = Notice> {
        let event = prop_oneof![
            Just(Event::CodeReleased),
            Just(Event::CodeRefused),
            Just(Event::TemporaryAccessPassIssued),
            Just(Event::ApprovalRequested),
        ];
        let at = prop_oneof![0..=253_402_300_799u64, any::<u64>()];
        let required = (event, at, value(), value(), value());
        let optional = proptest::collection::vec(proptest::option::of(value()), 8);
        (required, optional).prop_map(|((event, at, id, user_upn, operator), mut o)| Notice {
            id,
            event,
            at,
            user_upn,
            operator,
            user_display_name: o[0].take(),
            approver: o[1].take(),
            ticket: o[2].take(),
            method: o[3].take(),
            reason: o[4].take(),
            organisation: o[5].take(),
            report_to: o[6].take(),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_mail_says_nothing_that_is_not_in_the_notice(notice in notice()) {
            let mail = render_mail(&notice);
            let values = values(&notice);
            let template: Vec<&str> = words(TEMPLATE).collect();
            for text in [&mail.subject, &mail.text] {
                for word in words(text) {
                    prop_assert!(
                        template.contains(&word)
                            || date_piece(word)
                            || values.iter().any(|v| v.contains(word)),
                        "{word:?} in {text:?} comes from nowhere in {notice:?}"
                    );
                }
            }
            prop_assert!(!mail.subject.contains(['\n', '\r']));
            // Every value given is said, except the unused labels' values.
            prop_assert!(mail.text.contains(&one_line(&notice.operator)));
            prop_assert!(mail.text.contains(&one_line(&notice.user_upn)));
            prop_assert!(mail.text.contains(&one_line(&notice.id)));
        }

        #[test]
        fn the_webhook_body_is_the_notice_and_its_version(notice in notice()) {
            let body = webhook_body(&notice);
            let mut document: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&body).unwrap();
            let mut keys: Vec<&str> = document.keys().map(String::as_str).collect();
            keys.sort_unstable();
            let mut expected = WEBHOOK_FIELDS.to_vec();
            expected.sort_unstable();
            prop_assert_eq!(keys, expected);
            prop_assert_eq!(document.remove("version"), Some(serde_json::json!(1)));
            let back: Notice = serde_json::from_value(serde_json::Value::Object(document)).unwrap();
            prop_assert_eq!(back, notice);
        }
    }
}

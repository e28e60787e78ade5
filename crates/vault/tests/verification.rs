//! Promise 4 through the vault library, on both databases: codes only with
//! a verification record that means something — a method an admin
//! defined, its steps confirmed against data on file, evidence, a ticket
//! id that matches the policy, four eyes where the policy asks, the user
//! told — and refusals audited like grants.

mod common;

use common::*;
use oathdesk_vault::verification::{Policy, Verification};
use oathdesk_vault::{
    Error, FactsUpdate, HelpdeskRequest, NewOperator, Role, Session, Unlock, Vault,
};

on_both_backends!(
    the_default_methods_need_data_steps_evidence_and_a_ticket,
    data_on_file_is_imported_masked_and_audited,
    four_eyes_approval_by_another_operator,
    edited_policy_data_and_approvals_are_refused,
    the_user_is_told_and_nothing_secret_is_in_the_notice,
    a_temporary_access_pass_follows_the_same_rules_and_never_four_eyes,
);

const EVIDENCE: &str = "called the mobile on file, Carol answered and confirmed";

fn facts(upn: &str, pairs: &[(&str, &str)]) -> FactsUpdate {
    FactsUpdate {
        upn: upn.into(),
        display_name: None,
        values: pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), Some((*v).to_owned())))
            .collect(),
    }
}

fn call_back(evidence: &str) -> Vec<Verification> {
    vec![Verification {
        method: "call-back".into(),
        confirmed: vec![true, true],
        evidence: evidence.into(),
    }]
}

fn request(user: &str, verifications: Vec<Verification>, ticket: &str) -> HelpdeskRequest {
    HelpdeskRequest {
        verifications,
        ticket: ticket.into(),
        ..helpdesk(user)
    }
}

/// A vault with carol's token and her mobile number on file, under the
/// default policy (plus the tests' desk check, which these tests do not use).
fn desk(backend: Backend) -> (Fixture, Session) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(token("2100002", None, SEED, Some("carol@contoso.com")), NOW)
        .unwrap();
    s.add_token(token("2100003", None, SEED, Some("dave@contoso.com")), NOW)
        .unwrap();
    s.update_user_facts(
        vec![facts(
            "carol@contoso.com",
            &[
                ("mobile_phone", "+44 7700 900123"),
                ("department", "Finance"),
            ],
        )],
        "test",
        false,
        NOW,
    )
    .unwrap();
    (f, s)
}

fn refusals(s: &mut Session) -> usize {
    s.audit_entries()
        .unwrap()
        .iter()
        .filter(|e| e.action == "helpdesk.code" && e.outcome == "refused")
        .count()
}

fn the_default_methods_need_data_steps_evidence_and_a_ticket(backend: Backend) {
    let (_f, mut s) = desk(backend);
    let carol = "carol@contoso.com";
    // The red team's "x" / "x".
    let x = request(carol, call_back("x"), "INC0012345");
    assert!(refusal(s.helpdesk_code(&x, NOW)).starts_with("call-back: write what you saw"));
    let bad_ticket = request(carol, call_back(EVIDENCE), "x");
    assert_eq!(
        refusal(s.helpdesk_code(&bad_ticket, NOW)),
        format!(
            "'x' is not a ticket id: it must match {} (the policy's ticket_pattern)",
            oathdesk_vault::verification::DEFAULT_TICKET_PATTERN
        )
    );
    let mut half = call_back(EVIDENCE);
    half[0].confirmed = vec![true];
    assert!(
        refusal(s.helpdesk_code(&request(carol, half, "INC0012345"), NOW))
            .starts_with("step 2 of 'call-back' is not confirmed")
    );
    // Dave has no number on file: calling back is impossible.
    assert!(
        refusal(s.helpdesk_code(
            &request("dave@contoso.com", call_back(EVIDENCE), "INC0012345"),
            NOW
        ))
        .contains("has no mobile phone or office phone on file")
    );
    let unknown = vec![Verification {
        method: "trust-me".into(),
        confirmed: vec![true],
        evidence: EVIDENCE.into(),
    }];
    assert!(
        refusal(s.helpdesk_code(&request(carol, unknown, "INC0012345"), NOW))
            .starts_with("no verification method 'trust-me'")
    );
    // Refusals are audited like grants: five so far.
    assert_eq!(refusals(&mut s), 5);
    let grant = s
        .helpdesk_code(&request(carol, call_back(EVIDENCE), "INC0012345"), NOW)
        .unwrap();
    assert_eq!(grant.code, code_at(SEED, NOW));
    let entries = s.audit_entries().unwrap();
    let granted = entries
        .iter()
        .rfind(|e| e.action == "helpdesk.code" && e.outcome == "granted")
        .unwrap();
    assert_eq!(granted.ticket.as_deref(), Some("INC0012345"));
    assert!(
        granted.detail.contains(r#""methods":["call-back"]"#),
        "{}",
        granted.detail
    );
    assert!(granted.detail.contains(EVIDENCE), "{}", granted.detail);
    // The rate limit says when the next code is allowed.
    s.set_setting("helpdesk.codes_per_hour", 1, NOW).unwrap();
    match s.helpdesk_code(&request(carol, call_back(EVIDENCE), "INC0012345"), NOW + 60) {
        Err(Error::RateLimited {
            reason, retry_at, ..
        }) => {
            assert_eq!(retry_at, NOW + 3600);
            assert!(reason.contains("next code allowed at"), "{reason}");
        }
        other => panic!("expected the rate limit, got {other:?}"),
    }
}

fn data_on_file_is_imported_masked_and_audited(backend: Backend) {
    let (_f, mut s) = desk(backend);
    let report = s
        .update_user_facts(
            vec![
                facts("CAROL@contoso.com", &[("mobile_phone", "+44 7700 900123")]),
                facts("dave@contoso.com", &[("manager", "carol@contoso.com")]),
                facts("nobody@contoso.com", &[("mobile_phone", "1")]),
            ],
            "csv:people.csv",
            false,
            NOW + 10,
        )
        .unwrap();
    assert_eq!(report.updated, 1, "{report:?}");
    assert_eq!(report.unchanged, 1, "carol's number is the same");
    assert_eq!(report.not_in_vault, ["nobody@contoso.com"]);
    let dave = s.user_facts("dave@contoso.com", NOW).unwrap();
    assert_eq!(dave["manager"].value, "carol@contoso.com");
    assert_eq!(dave["manager"].source, "csv:people.csv");
    assert_eq!(dave["manager"].at, NOW + 10);
    // Carol's number keeps its first source: it did not change.
    assert_eq!(
        s.user_facts("carol@contoso.com", NOW).unwrap()["mobile_phone"].source,
        "test"
    );
    // An empty value removes it.
    let mut clear = facts("dave@contoso.com", &[]);
    clear.values.insert("manager".into(), None);
    s.update_user_facts(vec![clear], "admin", false, NOW)
        .unwrap();
    assert!(s.user_facts("dave@contoso.com", NOW).unwrap().is_empty());

    let view = s
        .verification_view("carol@contoso.com", "call-back", NOW)
        .unwrap();
    assert_eq!(view.steps.len(), 2);
    assert_eq!(view.steps[0].data[0].shown, "•••••••••0123");
    assert!(view.unusable.is_none());
    let json = serde_json::to_string(&view).unwrap();
    assert!(
        !json.contains("900123"),
        "the whole number is never shown: {json}"
    );
    let view = s
        .verification_view("dave@contoso.com", "call-back", NOW)
        .unwrap();
    assert!(
        view.unusable
            .unwrap()
            .contains("no mobile phone or office phone")
    );
    let views = s
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "helpdesk.verification_view")
        .collect::<Vec<_>>();
    assert_eq!(views.len(), 2);
    assert_eq!(views[0].user.as_deref(), Some("carol@contoso.com"));
    assert!(views[0].detail.contains("mobile_phone"));
    // To dial it, the operator reveals the number: only one the method
    // shows, and each reveal is audited on its own.
    assert_eq!(
        s.reveal_fact("carol@contoso.com", "call-back", "mobile_phone", NOW)
            .unwrap(),
        "+44 7700 900123"
    );
    assert!(matches!(
        s.reveal_fact("carol@contoso.com", "call-back", "department", NOW),
        Err(Error::Refused(_))
    ));
    let reveals: Vec<_> = s
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "helpdesk.reveal")
        .collect();
    assert_eq!(reveals.len(), 1);
    assert!(
        !reveals[0].detail.contains("900123"),
        "{}",
        reveals[0].detail
    );
    // A helpdesk operator may not read the whole data on file.
    assert!(matches!(
        helpdesk_session(&_f).user_facts("carol@contoso.com", NOW),
        Err(Error::Forbidden { .. })
    ));
}

/// A second key holder who may ask for codes (helpdesk operators work
/// through a console; the library is the same).
fn second_admin(f: &Fixture, s: &mut Session) -> Session {
    s.add_operator(
        "bea",
        NewOperator::Passphrase(b"bea pass long", TEST_KDF),
        Role::Admin,
        NOW,
    )
    .unwrap();
    Vault::open_at(&f.location)
        .unwrap()
        .unlock("bea", Unlock::Passphrase(b"bea pass long"))
        .unwrap()
}

/// A helpdesk operator's session through the library as a console would
/// open it (with the vault key the console holds).
fn helpdesk_session(f: &Fixture) -> Session {
    let mut admin = session(&f.location);
    admin
        .add_operator(
            "hd",
            NewOperator::Passphrase(b"hd pass long", TEST_KDF),
            Role::Helpdesk,
            NOW,
        )
        .unwrap();
    let key = admin.unseal_key("test", NOW).unwrap();
    Vault::open_at(&f.location)
        .unwrap()
        .unlock_with("hd", Unlock::Passphrase(b"hd pass long"), &key)
        .unwrap()
}

fn four_eyes_approval_by_another_operator(backend: Backend) {
    let (f, mut s) = desk(backend);
    let mut bea = second_admin(&f, &mut s);
    let mut policy = s.helpdesk_policy().unwrap();
    policy.four_eyes.groups = vec!["finance".into()];
    policy.approval_expires_minutes = 30;
    s.set_helpdesk_policy(&policy, NOW).unwrap();
    let asked = request("carol@contoso.com", call_back(EVIDENCE), "INC0012345");
    let id = match s.helpdesk_code(&asked, NOW) {
        Err(Error::ApprovalRequired { id, reason, .. }) => {
            assert!(reason.contains("is in 'finance'"), "{reason}");
            id
        }
        other => panic!("expected a request for approval, got {other:?}"),
    };
    // Nothing was released: no code before the approval.
    assert!(refusal(s.helpdesk_collect(&id, NOW + 1)).contains("waits for another operator"));
    assert!(
        refusal(s.decide_approval(&id, true, None, NOW + 1))
            .contains("another operator must decide")
    );
    let pending = bea.approvals(Some("pending"), NOW + 2).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].requester, "alice");
    assert_eq!(pending[0].methods, ["call-back"]);
    // Bea cannot collect alice's code.
    let approved = bea
        .decide_approval(&id, true, Some("called Carol's manager"), NOW + 3)
        .unwrap();
    assert_eq!(approved.decided_by.as_deref(), Some("bea"));
    assert!(refusal(bea.helpdesk_collect(&id, NOW + 4)).contains("only they collect"));
    let grant = s.helpdesk_collect(&id, NOW + 5).unwrap();
    assert_eq!(grant.code, code_at(SEED, NOW + 5));
    assert!(refusal(s.helpdesk_collect(&id, NOW + 6)).contains("is used"));
    let entries = s.audit_entries().unwrap();
    let actions: Vec<(&str, &str, &str)> = entries
        .iter()
        .filter(|e| e.action.starts_with("helpdesk.") && e.action != "helpdesk.policy")
        .map(|e| (e.action.as_str(), e.outcome.as_str(), e.operator.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("helpdesk.approval_request", "requested", "alice"),
            ("helpdesk.code", "refused", "alice"),
            ("helpdesk.approve", "refused", "alice"),
            ("helpdesk.approve", "ok", "bea"),
            ("helpdesk.code", "refused", "bea"),
            ("helpdesk.code", "granted", "alice"),
            ("helpdesk.code", "refused", "alice"),
        ]
    );
    assert!(
        entries
            .iter()
            .any(|e| e.detail.contains(r#""approved_by":"bea""#))
    );
    // An expired request cannot be approved; a denied one gives nothing.
    let late = match s.helpdesk_code(&asked, NOW + 100) {
        Err(Error::ApprovalRequired { id, expires_at, .. }) => {
            assert_eq!(expires_at, NOW + 100 + 30 * 60);
            id
        }
        other => panic!("{other:?}"),
    };
    assert!(
        refusal(bea.decide_approval(&late, true, None, NOW + 100 + 30 * 60)).contains("expired")
    );
    let denied = match s.helpdesk_code(&asked, NOW + 200) {
        Err(Error::ApprovalRequired { id, .. }) => id,
        other => panic!("{other:?}"),
    };
    bea.decide_approval(&denied, false, Some("caller hung up"), NOW + 201)
        .unwrap();
    assert!(refusal(s.helpdesk_collect(&denied, NOW + 202)).contains("is denied"));
    assert_eq!(
        s.approvals(None, NOW + 100 + 30 * 60)
            .unwrap()
            .iter()
            .map(|a| a.state.as_str())
            .collect::<Vec<_>>(),
        ["denied", "expired", "used"]
    );
}

fn edited_policy_data_and_approvals_are_refused(backend: Backend) {
    let (f, mut s) = desk(backend);
    let mut policy = s.helpdesk_policy().unwrap();
    policy.four_eyes.always = true;
    s.set_helpdesk_policy(&policy, NOW).unwrap();
    let asked = request("carol@contoso.com", call_back(EVIDENCE), "INC0012345");
    let Err(Error::ApprovalRequired { id, .. }) = s.helpdesk_code(&asked, NOW) else {
        panic!("four eyes")
    };
    drop(s);
    let altered = |f: &Fixture| -> String {
        match session(&f.location).helpdesk_code(&asked, NOW + 1) {
            Err(Error::Altered { row }) => row,
            other => panic!("expected an altered row, got {other:?}"),
        }
    };
    // Switching four eyes off in the database.
    f.execute(
        "UPDATE records SET body = replace(body, '\"always\":true', '\"always\":false') WHERE kind = 'policy'",
    );
    assert_eq!(altered(&f), "helpdesk policy");
    // Deleting the policy does not bring back the (laxer) default.
    f.execute("DELETE FROM records WHERE kind = 'policy'");
    assert_eq!(altered(&f), "helpdesk policy");
    let mut s = session(&f.location);
    s.set_helpdesk_policy(&Policy::default(), NOW).unwrap();
    drop(s);
    // The caller's number replaced by the social engineer's.
    f.execute(
        "UPDATE records SET body = replace(body, '900123', '555666') WHERE kind = 'user_facts'",
    );
    assert!(altered(&f).starts_with("data on file of user"));
    // An approval approved in the database.
    f.execute(&format!(
        "UPDATE records SET state = 'approved', body = replace(body, '\"state\":\"pending\"', '\"state\":\"approved\"') WHERE id = '{id}'"
    ));
    assert!(matches!(
        session(&f.location).helpdesk_collect(&id, NOW + 2),
        Err(Error::Altered { .. })
    ));
    let report = session(&f.location).verify_vault().unwrap();
    assert!(!report.intact);
    let kinds: Vec<&str> = report.rows.bad.iter().map(|b| b.kind).collect();
    assert!(
        kinds.contains(&"user_facts") && kinds.contains(&"approval"),
        "{kinds:?}"
    );
}

fn the_user_is_told_and_nothing_secret_is_in_the_notice(backend: Backend) {
    let (_f, mut s) = desk(backend);
    let mut policy = s.helpdesk_policy().unwrap();
    policy.notify.on_release = true;
    policy.notify.on_refusal = true;
    policy.notify.channel = Some("webhook".into());
    policy.notify.webhook_url = Some("https://hooks.example/oathdesk".into());
    s.set_helpdesk_policy(&policy, NOW).unwrap();
    s.update_user_facts(
        vec![facts(
            "carol@contoso.com",
            &[("mail", "carol.private@example.org")],
        )],
        "test",
        false,
        NOW,
    )
    .unwrap();
    let grant = s
        .helpdesk_code(
            &request("carol@contoso.com", call_back(EVIDENCE), "INC0012345"),
            NOW,
        )
        .unwrap();
    let _ = s.helpdesk_code(
        &request("carol@contoso.com", call_back("x"), "INC0012346"),
        NOW,
    );
    let queued = s.notices(Some("queued")).unwrap();
    assert_eq!(queued.len(), 2);
    let released = queued.iter().find(|n| n.event == "code_released").unwrap();
    assert_eq!(released.address, "carol.private@example.org");
    assert_eq!(released.ticket.as_deref(), Some("INC0012345"));
    assert_eq!(released.operator, "alice");
    let refused = queued.iter().find(|n| n.event == "code_refused").unwrap();
    assert!(
        refused
            .reason
            .as_deref()
            .unwrap()
            .contains("write what you saw")
    );
    let text = serde_json::to_string(&queued).unwrap();
    assert!(!text.contains(&grant.code), "no code in a notice");
    // Sent, or failed and retried later; each outcome audited.
    s.notice_outcome(
        &released.id,
        Err("503 from the hook".into()),
        false,
        NOW + 1,
    )
    .unwrap();
    assert_eq!(s.notices(Some("queued")).unwrap().len(), 2);
    s.notice_outcome(&released.id, Ok(2), false, NOW + 2)
        .unwrap();
    let sent = s.notices(Some("sent")).unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].attempts, 3);
    let actions: Vec<String> = s
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.action.starts_with("notice."))
        .map(|e| format!("{} {}", e.action, e.outcome))
        .collect();
    assert_eq!(actions, ["notice.failed failed", "notice.sent ok"]);
}

fn a_temporary_access_pass_follows_the_same_rules_and_never_four_eyes(backend: Backend) {
    let (_f, mut s) = desk(backend);
    let carol = "carol@contoso.com";
    let asked = request(carol, call_back(EVIDENCE), "INC0012345");
    // Off by default: the policy decides, not the front-end.
    assert!(refusal(s.helpdesk_tap(&asked, NOW)).contains("tap.enabled"));
    let mut policy = s.helpdesk_policy().unwrap();
    policy.tap.enabled = true;
    policy.tap.lifetime_minutes = 120;
    policy.notify.on_release = true;
    policy.notify.channel = Some("webhook".into());
    policy.notify.webhook_url = Some("https://hooks.example/oathdesk".into());
    s.set_helpdesk_policy(&policy, NOW).unwrap();
    // The same verification as a code: "x" and a bad ticket are refused.
    assert!(
        refusal(s.helpdesk_tap(&request(carol, call_back("x"), "INC0012345"), NOW))
            .starts_with("call-back: write what you saw")
    );
    assert!(
        refusal(s.helpdesk_tap(&request(carol, call_back(EVIDENCE), "x"), NOW))
            .contains("is not a ticket id")
    );
    let permit = s.helpdesk_tap(&asked, NOW).unwrap();
    assert_eq!(permit.lifetime_minutes, 120);
    assert!(permit.usable_once);
    assert_eq!(permit.methods, ["call-back"]);
    s.helpdesk_tap_outcome(&permit, Ok("tap-method-1"), NOW + 1)
        .unwrap();
    let told = s.notices(Some("queued")).unwrap();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].event, "temporary_access_pass_issued");
    // A pass valid for two hours falls under "four eyes for anything valid
    // longer than an hour": a pass cannot wait for an approver, so it is
    // refused with the way forward, and no pass is asked of Entra.
    policy.four_eyes.valid_longer_than_minutes = Some(60);
    s.set_helpdesk_policy(&policy, NOW).unwrap();
    let reason = refusal(s.helpdesk_tap(&asked, NOW + 10));
    assert!(reason.contains("not given under four eyes"), "{reason}");
    policy.four_eyes.valid_longer_than_minutes = None;
    policy.four_eyes.users = vec![carol.into()];
    s.set_helpdesk_policy(&policy, NOW).unwrap();
    assert!(refusal(s.helpdesk_tap(&asked, NOW + 20)).contains("not given under four eyes"));
    // Entra's own refusal is recorded as such.
    policy.four_eyes.users.clear();
    s.set_helpdesk_policy(&policy, NOW).unwrap();
    let permit = s.helpdesk_tap(&asked, NOW + 30).unwrap();
    s.helpdesk_tap_outcome(&permit, Err("the TAP policy is disabled"), NOW + 31)
        .unwrap();
    let outcomes: Vec<String> = s
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "helpdesk.tap")
        .map(|e| e.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            "refused",
            "refused",
            "refused",
            "requested",
            "granted",
            "refused",
            "refused",
            "requested",
            "refused"
        ]
    );
    assert_eq!(
        s.notices(Some("queued")).unwrap().len(),
        1,
        "no notice for a refused pass"
    );
}

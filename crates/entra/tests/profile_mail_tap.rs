//! The real Entra client against the loopback Graph simulator for the
//! helpdesk's calls: users with their data on file (paging, managers),
//! mail, and Temporary Access Passes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use oathdesk_entra::auth::{Authenticator, ClientCredential, Endpoints, SignIn, TokenCache};
use oathdesk_entra::graph::{DirectoryProfile, Graph, MAX_USERS_PAGE, ManagerRef, unix_now};
use oathdesk_entra::http::{Body, Http, Method, RetryPolicy};
use oathdesk_entra::{Error, Operation, Rejection};
use oathdesk_entra_sim::{FaultKind, Simulator, TapPolicy, UserProfile, permissions};
use serde_json::Value;
use zeroize::Zeroizing;

const APP: &str = "11111111-2222-4333-8444-555555555555";
const SECRET: &str = "app secret";

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

fn app_auth<'h>(sim: &Simulator, http: &'h Http) -> Authenticator<'h> {
    let sign_in = SignIn::new(
        http,
        Endpoints::new(&sim.url(), &sim.url(), sim.tenant()).unwrap(),
        APP,
        Some(ClientCredential::Secret(Zeroizing::new(SECRET.into()))),
    )
    .unwrap();
    Authenticator::new(sign_in, false, TokenCache::default())
}

/// A raw GET with the app's token: the JSON exactly as the simulator
/// answers (the status and the body).
fn raw_get(sim: &Simulator, http: &Http, auth: &Authenticator<'_>, path: &str) -> (u16, Value) {
    let token = auth.token(unix_now(), false).unwrap();
    let answer = http
        .send(
            Operation::ListUsers,
            Method::Get,
            &format!("{}/beta{path}", sim.url()),
            Some(&token),
            &Body::Empty,
        )
        .unwrap();
    (answer.status, serde_json::from_str(&answer.body).unwrap())
}

fn profile(i: usize) -> UserProfile {
    UserProfile {
        display_name: Some(format!("User {i:04}")),
        mail: Some(format!("user{i}@contoso.com")),
        mobile_phone: i.is_multiple_of(2).then(|| format!("+1 555 {i:04}")),
        business_phones: vec![format!("+1 425 {i:04}")],
        employee_id: Some(format!("E{i:05}")),
        department: Some(["IT", "Sales", "Finance"][i % 3].into()),
        office_location: Some(format!("Building {}", i % 7)),
    }
}

/// `n` users with profiles; every user after the first ten reports to one
/// of the first ten. Returns the ids in creation order.
fn seed_users(sim: &Simulator, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n)
        .map(|i| sim.add_user_with_profile(&format!("user{i}@contoso.com"), &profile(i)))
        .collect();
    for (i, id) in ids.iter().enumerate().skip(10) {
        assert!(sim.set_manager(id, Some(&ids[i % 10])));
    }
    ids
}

fn users_requests(sim: &Simulator) -> Vec<String> {
    sim.log()
        .into_iter()
        .filter(|l| l.path.starts_with("/beta/users?"))
        .map(|l| l.path)
        .collect()
}

// ----- users with their data on file ------------------------------------------------

#[test]
fn paging_across_three_pages_returns_every_user_exactly_once() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let ids = seed_users(&sim, 250);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http);
    let graph = Graph::new(&http, &auth);

    sim.clear_log();
    let mut pages = graph.user_profile_pages(Some(100)).unwrap();
    let mut sizes = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for page in pages.by_ref() {
        let page = page.unwrap();
        sizes.push(page.len());
        for user in page {
            *seen.entry(user.id).or_default() += 1;
        }
    }
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(pages.next_link(), None);
    assert_eq!(seen.len(), 250);
    assert!(seen.values().all(|&n| n == 1), "a user came twice");
    assert_eq!(seen.keys().collect::<HashSet<_>>(), ids.iter().collect());
    // The next pages were reached through absolute links with a skip token
    // that repeat the query.
    let requests = users_requests(&sim);
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(!requests[0].contains("skiptoken"));
    for later in &requests[1..] {
        assert!(later.contains("$skiptoken="), "{later}");
        assert!(
            later.contains("%24top=100") || later.contains("$top=100"),
            "{later}"
        );
        assert!(later.contains("manager"), "{later}");
    }

    // Graph's default page is 100; the all-at-once call asks for 999, but
    // Graph expands managers for at most 100 users a page.
    sim.clear_log();
    assert_eq!(
        graph
            .user_profile_pages(None)
            .unwrap()
            .map(|p| p.unwrap().len())
            .collect::<Vec<_>>(),
        [100, 100, 50]
    );
    sim.clear_log();
    let all = graph.users_with_profile().unwrap();
    assert_eq!(all.len(), 250);
    assert_eq!(all.iter().map(|u| &u.id).collect::<HashSet<_>>().len(), 250);
    assert_eq!(users_requests(&sim).len(), 3);
    assert!(users_requests(&sim)[0].contains(&format!("$top={MAX_USERS_PAGE}")));
    // Without $expand, $top is honoured up to 999.
    let (_, page) = raw_get(&sim, &http, &auth, "/users?$select=id&$top=999");
    assert_eq!(page["value"].as_array().unwrap().len(), 250);
    assert!(page.get("@odata.nextLink").is_none());
    let (_, page) = raw_get(&sim, &http, &auth, "/users?$select=id&$top=120");
    assert_eq!(page["value"].as_array().unwrap().len(), 120);
    assert!(
        page["@odata.nextLink"]
            .as_str()
            .unwrap()
            .starts_with(&sim.url())
    );
    // Out of Graph's range, nothing is sent.
    sim.clear_log();
    assert!(matches!(
        graph.user_profile_pages(Some(1000)).err(),
        Some(Error::Refused(_))
    ));
    assert!(matches!(
        graph.user_profile_pages(Some(0)).err(),
        Some(Error::Refused(_))
    ));
    assert!(sim.log().is_empty());
}

#[test]
fn fields_round_trip_and_a_user_without_a_manager_has_none() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let alice = sim.add_user_with_profile(
        "alice@contoso.com",
        &UserProfile {
            display_name: Some("Alice Ng".into()),
            mail: Some("alice.ng@contoso.com".into()),
            mobile_phone: Some("+44 7700 900123".into()),
            business_phones: vec!["+44 20 7946 0001".into(), "+44 20 7946 0002".into()],
            employee_id: Some("000123".into()),
            department: Some("Helpdesk".into()),
            office_location: Some("London 4/12".into()),
        },
    );
    let bob = sim.add_user_with_profile(
        "bob@contoso.com",
        &UserProfile {
            department: Some("Sales".into()),
            ..UserProfile::default()
        },
    );
    let carol = sim.add_user("carol@contoso.com", false);
    assert!(sim.set_manager("bob@contoso.com", Some("alice@contoso.com")));
    assert!(!sim.set_manager("bob@contoso.com", Some("nobody@contoso.com")));
    assert!(
        !sim.set_manager(&alice, Some(&alice)),
        "no one manages themselves"
    );
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http);
    let graph = Graph::new(&http, &auth);

    let users = graph.users_with_profile().unwrap();
    let by_id: HashMap<&str, &DirectoryProfile> =
        users.iter().map(|u| (u.id.as_str(), u)).collect();
    assert_eq!(
        *by_id[alice.as_str()],
        DirectoryProfile {
            id: alice.clone(),
            user_principal_name: Some("alice@contoso.com".into()),
            display_name: Some("Alice Ng".into()),
            mail: Some("alice.ng@contoso.com".into()),
            mobile_phone: Some("+44 7700 900123".into()),
            business_phones: vec!["+44 20 7946 0001".into(), "+44 20 7946 0002".into()],
            employee_id: Some("000123".into()),
            department: Some("Helpdesk".into()),
            office_location: Some("London 4/12".into()),
            manager: None,
        }
    );
    let b = by_id[bob.as_str()];
    assert_eq!(
        b.manager,
        Some(ManagerRef {
            id: alice.clone(),
            upn: Some("alice@contoso.com".into())
        })
    );
    assert_eq!(
        (
            b.mail.as_deref(),
            b.department.as_deref(),
            b.business_phones.len()
        ),
        (None, Some("Sales"), 0)
    );
    let c = by_id[carol.as_str()];
    assert_eq!(
        (c.manager.as_ref(), c.display_name.as_deref()),
        (None, Some("carol"))
    );

    // On the wire: Graph's shapes. Missing values are null, businessPhones
    // is an array, a user without a manager has no manager property, and
    // the manager carries only what $select asked for.
    let (status, page) = raw_get(
        &sim,
        &http,
        &auth,
        "/users?$select=id,mail,businessPhones&$expand=manager($select=id,userPrincipalName)",
    );
    assert_eq!(status, 200);
    let values = page["value"].as_array().unwrap();
    let wire = |id: &str| values.iter().find(|v| v["id"] == id).unwrap().clone();
    let carol_wire = wire(&carol);
    assert_eq!(carol_wire["mail"], Value::Null);
    assert!(carol_wire.as_object().unwrap().contains_key("mail"));
    assert_eq!(carol_wire["businessPhones"], serde_json::json!([]));
    assert!(!carol_wire.as_object().unwrap().contains_key("manager"));
    assert!(
        !carol_wire.as_object().unwrap().contains_key("department"),
        "not selected"
    );
    let bob_manager = wire(&bob)["manager"].clone();
    assert_eq!(bob_manager["@odata.type"], "#microsoft.graph.user");
    assert_eq!(bob_manager["userPrincipalName"], "alice@contoso.com");
    assert_eq!(bob_manager.as_object().unwrap().len(), 3, "{bob_manager}");
    // A user's manager by itself, and Graph's 404 for one who has none.
    assert_eq!(
        raw_get(&sim, &http, &auth, "/users/bob@contoso.com/manager").1["id"],
        alice
    );
    assert_eq!(
        raw_get(&sim, &http, &auth, &format!("/users/{alice}/manager")).0,
        404
    );
    // Graph's limits on the query.
    let (status, error) = raw_get(&sim, &http, &auth, "/users?$top=1000");
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("between 1 and 999")
    );
    assert_eq!(
        raw_get(&sim, &http, &auth, "/users?$select=id,shoeSize").0,
        400
    );
    assert_eq!(
        raw_get(&sim, &http, &auth, "/users?$expand=directReports").0,
        400
    );
    assert_eq!(
        raw_get(&sim, &http, &auth, "/users?$skiptoken=garbage").0,
        400
    );
    assert_eq!(raw_get(&sim, &http, &auth, "/users?$skip=10").0, 400);

    // Changed data on file is what the next listing shows.
    assert!(sim.set_profile(
        &carol,
        &UserProfile {
            mobile_phone: Some("+1 206 555 0199".into()),
            ..UserProfile::default()
        }
    ));
    assert!(sim.set_manager(&bob, None));
    let users = graph.users_with_profile().unwrap();
    let find = |id: &str| users.iter().find(|u| u.id == id).unwrap().clone();
    assert_eq!(
        find(&carol).mobile_phone.as_deref(),
        Some("+1 206 555 0199")
    );
    assert_eq!(
        find(&carol).display_name.as_deref(),
        Some("carol"),
        "name kept"
    );
    assert_eq!(find(&bob).manager, None);
}

#[test]
fn users_added_while_paging_do_not_shift_the_pages() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let ids = seed_users(&sim, 30);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http);
    let graph = Graph::new(&http, &auth);
    let mut pages = graph.user_profile_pages(Some(10)).unwrap();
    let mut seen: Vec<String> = pages
        .next()
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    let late = sim.add_user("late@contoso.com", false);
    for page in pages {
        seen.extend(page.unwrap().into_iter().map(|u| u.id));
    }
    let mut expected = ids.clone();
    expected.push(late);
    assert_eq!(
        seen, expected,
        "each once, in creation order, the newcomer last"
    );
}

#[test]
fn listing_users_needs_user_read_all_and_stays_on_the_graph_host() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &[permissions::METHODS_WRITE]);
    seed_users(&sim, 3);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http);
    let graph = Graph::new(&http, &auth);
    let error = graph.users_with_profile().unwrap_err();
    assert!(
        matches!(
            error,
            Error::Forbidden {
                operation: Operation::ListUsers,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("User.Read.All"), "{error}");

    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    seed_users(&sim, 3);
    sim.set_next_link_base("http://127.0.0.2:1");
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http);
    let graph = Graph::new(&http, &auth);
    let mut pages = graph.user_profile_pages(Some(2)).unwrap();
    assert_eq!(pages.next().unwrap().unwrap().len(), 2);
    let error = pages.next().unwrap().unwrap_err();
    assert!(error.to_string().contains("another host"), "{error}");
    assert!(pages.next().is_none(), "an error ends the pages");
}

#[test]
fn ten_thousand_users_are_seeded_and_listed() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let started = Instant::now();
    let ids = seed_users(&sim, 10_000);
    let seeded = started.elapsed();
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http);
    let graph = Graph::new(&http, &auth);
    sim.clear_log();
    let started = Instant::now();
    let mut count = 0;
    let mut seen = HashSet::new();
    for page in graph.user_profile_pages(Some(MAX_USERS_PAGE)).unwrap() {
        for user in page.unwrap() {
            count += 1;
            assert!(user.manager.is_some() || ids[..10].contains(&user.id));
            seen.insert(user.id);
        }
    }
    let listed = started.elapsed();
    assert_eq!((count, seen.len()), (10_000, 10_000));
    // 100 users a page: Graph's cap while it expands the manager.
    assert_eq!(users_requests(&sim).len(), 100);
    eprintln!("10,000 users: seeded in {seeded:?}, listed in {listed:?} (100 pages)");
}

// ----- mail ---------------------------------------------------------------------------

#[test]
fn mail_is_sent_as_asked_and_recorded_with_the_exact_text() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let helpdesk = sim.add_user("helpdesk@contoso.com", false);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http);
    let graph = Graph::new(&http, &auth);
    let subject = "Your code — «ticket 42»";
    let text = "Hello Bob,\n\nyour token is ready.\r\n  Indented line & <not html>\n";
    let before = sim.now();
    graph
        .send_mail("helpdesk@contoso.com", "bob@fabrikam.com", subject, text)
        .unwrap();
    let sent = sim.sent_mail();
    assert_eq!(sent.len(), 1);
    let mail = &sent[0];
    assert_eq!(mail.from, "helpdesk@contoso.com");
    assert_eq!(mail.from_id, helpdesk);
    assert_eq!(mail.to, ["bob@fabrikam.com"]);
    assert!(mail.cc.is_empty());
    assert_eq!(mail.subject, subject);
    assert_eq!(mail.body, text);
    assert_eq!(mail.content_type, "Text");
    assert!(!mail.save_to_sent_items);
    assert!(mail.at >= before && mail.at <= sim.now());
    let last = sim.log().pop().unwrap();
    assert_eq!((last.method.as_str(), last.status), ("POST", 202));
    assert_eq!(last.path, "/beta/users/helpdesk@contoso.com/sendMail");

    // An unknown mailbox: Exchange's 404, nothing sent.
    let error = graph
        .send_mail("nobody@contoso.com", "bob@fabrikam.com", "x", "y")
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    let graph_error = error.graph().unwrap();
    assert_eq!(graph_error.code, "ErrorInvalidUser");
    assert_eq!(
        graph_error.message,
        "The requested user 'nobody@contoso.com' is invalid."
    );
    assert!(
        error.to_string().contains("mailbox nobody@contoso.com"),
        "{error}"
    );
    // A recipient that is no address: a typed refusal with Exchange's words.
    let error = graph
        .send_mail("helpdesk@contoso.com", "bob at fabrikam", "x", "y")
        .unwrap_err();
    assert_eq!(
        error.rejection(),
        Some(Rejection::InvalidRecipients),
        "{error:?}"
    );
    assert!(error.entra_message().unwrap().contains("bob at fabrikam"));
    assert_eq!(sim.sent_mail().len(), 1, "nothing more was sent");
}

#[test]
fn a_passing_outage_is_retried_and_the_mail_sent_once() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    sim.add_user("helpdesk@contoso.com", false);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http);
    let graph = Graph::new(&http, &auth);
    graph.users_with_profile().unwrap(); // signed in
    sim.fail_next_sends(1);
    let before = http.stats();
    graph
        .send_mail("helpdesk@contoso.com", "bob@fabrikam.com", "Hi", "Once")
        .unwrap();
    assert_eq!(http.stats().retries - before.retries, 1);
    assert_eq!(sim.sent_mail().len(), 1);
    let statuses: Vec<u16> = sim
        .log()
        .iter()
        .filter(|l| l.path.ends_with("/sendMail"))
        .map(|l| l.status)
        .collect();
    assert_eq!(statuses, [503, 202]);
    // More failures than attempts: the caller hears it, nothing was sent.
    sim.fail_next_sends(10);
    let error = graph
        .send_mail("helpdesk@contoso.com", "bob@fabrikam.com", "Hi", "Never")
        .unwrap_err();
    assert!(
        matches!(error, Error::GaveUp { attempts: 4, .. }),
        "{error:?}"
    );
    assert_eq!(sim.sent_mail().len(), 1);
    sim.clear_faults();
    // sendMail has no idempotency key: an answer lost after Exchange took
    // the message means the retry sends it again. Callers should know.
    sim.fault(
        Some("POST"),
        "/sendMail",
        1,
        FaultKind::FailAfter { status: 503 },
    );
    graph
        .send_mail("helpdesk@contoso.com", "bob@fabrikam.com", "Hi", "Twice")
        .unwrap();
    let twice = sim.sent_mail().iter().filter(|m| m.body == "Twice").count();
    assert_eq!(twice, 2);
}

#[test]
fn sending_mail_needs_mail_send() {
    let sim = Simulator::start();
    sim.add_app(
        APP,
        SECRET,
        &[permissions::USERS_READ, permissions::METHODS_WRITE],
    );
    sim.add_user("helpdesk@contoso.com", false);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http);
    let graph = Graph::new(&http, &auth);
    let error = graph
        .send_mail("helpdesk@contoso.com", "bob@fabrikam.com", "x", "y")
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Forbidden {
                operation: Operation::SendMail,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("Mail.Send"), "{error}");
    assert_eq!(error.graph().unwrap().code, "ErrorAccessDenied");
    assert!(sim.sent_mail().is_empty());
}

// ----- Temporary Access Pass -------------------------------------------------------------

#[test]
fn a_temporary_access_pass_is_created_as_asked_and_never_printed() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let bob = sim.add_user("bob@contoso.com", false);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http);
    let graph = Graph::new(&http, &auth);

    let tap = graph
        .create_temporary_access_pass(&bob, Some(120), true)
        .unwrap();
    assert_eq!(tap.lifetime_in_minutes, 120);
    assert!(tap.is_usable_once);
    assert_eq!(tap.is_usable, Some(true));
    assert_eq!(
        tap.method_usability_reason.as_deref(),
        Some("EnabledByPolicy")
    );
    assert_eq!(tap.pass.chars().count(), 8, "the policy's default length");
    assert!(tap.created_date_time.as_deref().unwrap().ends_with('Z'));
    let held = sim.temporary_access_pass(&bob).unwrap();
    assert_eq!(
        (held.id.as_str(), held.pass.as_str()),
        (tap.id.as_str(), tap.pass.as_str())
    );
    assert_eq!((held.lifetime_in_minutes, held.is_usable_once), (120, true));
    let shown = format!("{tap:?}");
    assert!(!shown.contains(tap.pass.as_str()), "{shown}");
    assert!(shown.contains(&tap.id), "{shown}");
    assert!(!format!("{held:?}").contains(held.pass.as_str()));

    // Without a lifetime, the policy's default; the policy decides length.
    sim.set_tap_policy(TapPolicy {
        default_lifetime_in_minutes: 90,
        default_length: 16,
        ..TapPolicy::default()
    });
    let tap = graph
        .create_temporary_access_pass("bob@contoso.com", None, false)
        .unwrap();
    assert_eq!((tap.lifetime_in_minutes, tap.is_usable_once), (90, false));
    assert_eq!(tap.pass.chars().count(), 16);
    let policy = graph.temporary_access_pass_policy().unwrap();
    assert_eq!(policy.state, "enabled");
    assert_eq!(
        (
            policy.minimum_lifetime_in_minutes,
            policy.default_lifetime_in_minutes,
            policy.maximum_lifetime_in_minutes,
            policy.default_length
        ),
        (Some(60), Some(90), Some(480), Some(16))
    );
    // By UPN, one that needs escaping in the path.
    sim.add_user("o'brien@contoso.com", false);
    let tap = graph
        .create_temporary_access_pass("o'brien@contoso.com", None, true)
        .unwrap();
    assert_eq!(
        sim.temporary_access_pass("O'Brien@contoso.com").unwrap().id,
        tap.id
    );
    // An unknown user.
    let error = graph
        .create_temporary_access_pass("nobody@contoso.com", None, true)
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
}

#[test]
fn entra_refusals_of_a_pass_are_typed_with_entras_reason() {
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let bob = sim.add_user("bob@contoso.com", false);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http);
    let graph = Graph::new(&http, &auth);

    // The method is off in the tenant.
    sim.set_tap_policy(TapPolicy {
        enabled: false,
        ..TapPolicy::default()
    });
    let error = graph
        .create_temporary_access_pass(&bob, Some(60), true)
        .unwrap_err();
    assert_eq!(
        error.rejection(),
        Some(Rejection::TapPolicyDisabled),
        "{error:?}"
    );
    assert!(
        matches!(
            &error,
            Error::Rejected {
                operation: Operation::CreateTap,
                ..
            }
        ),
        "{error:?}"
    );
    let words = error.entra_message().unwrap();
    assert!(words.contains("disabled"), "{words}");
    assert_eq!(
        error.to_string(),
        format!("Entra refused to create a Temporary Access Pass: {words}")
    );
    assert!(sim.temporary_access_pass(&bob).is_none());

    // A lifetime outside the policy's range (the default 60 to 480).
    sim.set_tap_policy(TapPolicy::default());
    let error = graph
        .create_temporary_access_pass(&bob, Some(30), true)
        .unwrap_err();
    assert_eq!(
        error.rejection(),
        Some(Rejection::TapLifetimeOutOfRange),
        "{error:?}"
    );
    assert_eq!(
        error.entra_message(),
        Some("Invalid LifetimeInMinutes specified. The valid range between 60 and 480.")
    );
    assert!(
        graph
            .create_temporary_access_pass(&bob, Some(481), true)
            .unwrap_err()
            .rejection()
            == Some(Rejection::TapLifetimeOutOfRange)
    );
    assert!(sim.temporary_access_pass(&bob).is_none());
    // Outside what Entra ever takes: refused before anything is sent.
    sim.clear_log();
    let error = graph
        .create_temporary_access_pass(&bob, Some(5), true)
        .unwrap_err();
    assert!(matches!(error, Error::Refused(_)), "{error:?}");
    assert!(sim.log().is_empty());

    // A policy of one-time passes refuses a multi-use one.
    sim.set_tap_policy(TapPolicy {
        is_usable_once: true,
        ..TapPolicy::default()
    });
    let error = graph
        .create_temporary_access_pass(&bob, None, false)
        .unwrap_err();
    assert_eq!(
        error.rejection(),
        Some(Rejection::TapOneTimeOnly),
        "{error:?}"
    );
    assert!(graph.create_temporary_access_pass(&bob, None, true).is_ok());
}

#[test]
fn a_second_pass_replaces_the_first_as_documented() {
    // Microsoft's "Create temporaryAccessPassMethod": "A user can only have
    // one Temporary Access Pass ... the previous Temporary Access Pass will
    // be deleted, and a new Temporary Access Pass will be created."
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    let bob = sim.add_user("bob@contoso.com", false);
    let carol = sim.add_user("carol@contoso.com", false);
    let http = Http::new(policy());
    let auth = app_auth(&sim, &http);
    let graph = Graph::new(&http, &auth);
    let first = graph
        .create_temporary_access_pass(&bob, Some(60), true)
        .unwrap();
    let other = graph
        .create_temporary_access_pass(&carol, Some(60), true)
        .unwrap();
    let second = graph
        .create_temporary_access_pass(&bob, Some(240), false)
        .unwrap();
    assert_ne!(first.id, second.id);
    assert_ne!(first.pass, second.pass);
    let held = sim.temporary_access_pass(&bob).unwrap();
    assert_eq!(held.id, second.id, "only the newest pass is held");
    assert_eq!(held.lifetime_in_minutes, 240);
    assert_eq!(
        sim.temporary_access_pass(&carol).unwrap().id,
        other.id,
        "another user's pass is untouched"
    );
    // Graph lists the one pass, without the pass itself.
    let (status, list) = raw_get(
        &sim,
        &http,
        &auth,
        &format!("/users/{bob}/authentication/temporaryAccessPassMethods"),
    );
    assert_eq!(status, 200);
    let value = list["value"].as_array().unwrap();
    assert_eq!(value.len(), 1);
    assert_eq!(value[0]["id"], second.id.as_str());
    assert_eq!(value[0]["temporaryAccessPass"], Value::Null);
}

//! The webhook against a loopback receiver that records what it gets and
//! answers from a script.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use oathdesk_notify::{
    DEFAULT_TOLERANCE, Delivered, Event, Notice, RetryPolicy, SignatureError, Webhook,
    WebhookError, verify_signature, webhook_body,
};
use zeroize::Zeroizing;

const SECRET: &[u8] = b"s3cret-for-the-webhook-tests-0042";
const NOW: u64 = 1_700_000_000;
/// A token in the URL's query, as some services use: it must not show up
/// in messages either.
const PATH: &str = "/hooks/oathdesk?token=path-token-77";

// ----- the receiver -------------------------------------------------------

#[derive(Clone, Debug)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    raw: Vec<u8>,
}

impl Request {
    /// The one value of a header (case-insensitive); panics if repeated.
    fn header(&self, name: &str) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let value = values.next();
        assert!(values.next().is_none(), "{name} sent twice");
        value
    }

    fn timestamp(&self) -> u64 {
        self.header("X-Oathdesk-Timestamp")
            .unwrap()
            .parse()
            .unwrap()
    }

    fn verify(&self, secret: &[u8], now: u64) -> Result<(), SignatureError> {
        verify_signature(
            secret,
            self.header("X-Oathdesk-Timestamp").unwrap(),
            &self.body,
            self.header("X-Oathdesk-Signature").unwrap(),
            now,
            DEFAULT_TOLERANCE,
        )
    }
}

#[derive(Clone, Debug)]
enum Reply {
    Status(u16),
    /// A status and one more header line.
    With(u16, String),
    /// Read the request, then say nothing for this long.
    Hang(Duration),
}

struct Receiver {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// A receiver on 127.0.0.1 that answers connection after connection from
/// `script`, then 200.
fn receiver(script: Vec<Reply>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{PATH}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&requests);
    thread::spawn(move || {
        let mut script = script.into_iter();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let reply = script.next().unwrap_or(Reply::Status(200));
            let recorded = Arc::clone(&recorded);
            thread::spawn(move || serve(stream, &reply, &recorded));
        }
    });
    Receiver { url, requests }
}

fn serve(stream: TcpStream, reply: &Reply, recorded: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut raw = Vec::new();
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        raw.extend_from_slice(line.as_bytes());
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let mut request_line = head[0].split(' ');
    let method = request_line.next().unwrap().to_owned();
    let target = request_line.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = head[1..]
        .iter()
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    raw.extend_from_slice(&body);
    recorded.lock().unwrap().push(Request {
        method,
        target,
        headers,
        body,
        raw,
    });

    let (status, extra) = match reply {
        Reply::Status(status) => (*status, String::new()),
        Reply::With(status, line) => (*status, format!("{line}\r\n")),
        Reply::Hang(time) => {
            thread::sleep(*time);
            return;
        }
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n{extra}\r\n"
    );
}

// ----- the sender ---------------------------------------------------------

/// Three attempts with millisecond backoff, so the tests run fast.
fn fast() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(2),
        cap: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(2),
    }
}

fn webhook(url: &str) -> Webhook {
    Webhook::new(url, Zeroizing::new(SECRET.to_vec()))
        .unwrap()
        .with_timeout(Duration::from_secs(5))
        .with_retry(fast())
}

fn notice() -> Notice {
    Notice {
        id: "d6f1c3a0-5b7e-4c1e-9f0a-2b3c4d5e6f70".into(),
        event: Event::CodeReleased,
        at: NOW - 5,
        user_upn: "alice@contoso.com".into(),
        user_display_name: Some("Alice Example".into()),
        operator: "bob".into(),
        approver: None,
        ticket: Some("INC-1234".into()),
        method: Some("callback".into()),
        reason: None,
        organisation: Some("Contoso IT".into()),
        report_to: Some("+1 555 0100".into()),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Nothing secret in a text: not the secret, in any spelling, nor the
/// URL's token.
fn assert_clean(text: &str) {
    let secret = String::from_utf8(SECRET.to_vec()).unwrap();
    let hex = data_encoding_hex(SECRET);
    assert!(!text.contains(&secret), "{text}");
    assert!(!text.to_lowercase().contains(&hex), "{text}");
    assert!(!text.contains("path-token-77"), "{text}");
}

fn data_encoding_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ----- the tests ----------------------------------------------------------

#[test]
fn a_delivered_notice_is_signed_and_only_the_right_secret_verifies_it() {
    let receiver = receiver(vec![Reply::Status(204)]);
    let notice = notice();
    let delivered = webhook(&receiver.url).send(&notice, NOW).unwrap();
    assert_eq!(
        delivered,
        Delivered {
            attempts: 1,
            status: 204
        }
    );

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, PATH);
    assert_eq!(request.header("Content-Type"), Some("application/json"));
    assert_eq!(
        request.header("X-Oathdesk-Delivery"),
        Some(notice.id.as_str())
    );
    let timestamp = request.timestamp();
    assert!((NOW..NOW + 2).contains(&timestamp), "{timestamp}");
    assert!(
        request
            .header("X-Oathdesk-Signature")
            .unwrap()
            .starts_with("v1=")
    );
    assert_eq!(request.body, webhook_body(&notice));

    assert_eq!(request.verify(SECRET, timestamp), Ok(()));
    assert_eq!(
        request.verify(b"another-secret-of-the-same-size-0", timestamp),
        Err(SignatureError::Mismatch)
    );
    let mut altered = request.clone();
    altered.body = String::from_utf8(altered.body)
        .unwrap()
        .replace("\"operator\":\"bob\"", "\"operator\":\"eve\"")
        .into_bytes();
    assert_ne!(altered.body, request.body);
    assert_eq!(
        altered.verify(SECRET, timestamp),
        Err(SignatureError::Mismatch)
    );
    // Replayed later: genuine, but stale.
    assert_eq!(
        request.verify(SECRET, timestamp + 301),
        Err(SignatureError::OutsideTolerance {
            timestamp,
            now: timestamp + 301
        })
    );
    // Replayed with a fresh timestamp: the signature no longer matches.
    let mut restamped = request.clone();
    for (name, value) in &mut restamped.headers {
        if name.eq_ignore_ascii_case("X-Oathdesk-Timestamp") {
            *value = (timestamp + 301).to_string();
        }
    }
    assert_eq!(
        restamped.verify(SECRET, timestamp + 301),
        Err(SignatureError::Mismatch)
    );

    assert!(!contains(&request.raw, SECRET));
    assert_clean(&String::from_utf8_lossy(&request.raw).replace(PATH, ""));
}

#[test]
fn a_503_then_200_is_two_attempts_of_one_delivery() {
    let receiver = receiver(vec![Reply::Status(503), Reply::Status(200)]);
    let delivered = webhook(&receiver.url).send(&notice(), NOW).unwrap();
    assert_eq!(
        delivered,
        Delivered {
            attempts: 2,
            status: 200
        }
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("X-Oathdesk-Delivery"),
        requests[1].header("X-Oathdesk-Delivery")
    );
    assert_eq!(requests[0].body, requests[1].body);
    for request in &requests {
        assert_eq!(request.verify(SECRET, request.timestamp()), Ok(()));
    }
}

#[test]
fn a_400_is_not_retried() {
    let receiver = receiver(vec![Reply::Status(400), Reply::Status(200)]);
    let url = receiver.url.clone();
    let error = webhook(&url).send(&notice(), NOW).unwrap_err();
    let origin = url.strip_suffix(PATH).unwrap().to_owned();
    assert_eq!(
        error,
        WebhookError::Rejected {
            origin,
            status: 400,
            attempts: 1
        }
    );
    assert_eq!(receiver.requests().len(), 1);
    let message = error.to_string();
    assert!(message.contains("400"), "{message}");
    assert_clean(&message);
}

#[test]
fn a_redirect_is_not_followed() {
    let elsewhere = receiver(vec![]);
    let receiver = receiver(vec![Reply::With(
        307,
        format!("Location: {}", elsewhere.url),
    )]);
    let error = webhook(&receiver.url).send(&notice(), NOW).unwrap_err();
    assert!(
        matches!(
            error,
            WebhookError::Rejected {
                status: 307,
                attempts: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(elsewhere.requests().len(), 0);
}

#[test]
fn a_receiver_that_keeps_failing_is_given_up_after_the_attempts() {
    let receiver = receiver(vec![Reply::Status(500); 5]);
    let error = webhook(&receiver.url).send(&notice(), NOW).unwrap_err();
    assert!(
        matches!(
            error,
            WebhookError::GaveUp {
                status: 500,
                attempts: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(receiver.requests().len(), 3);
    assert_clean(&error.to_string());
}

#[test]
fn a_receiver_that_is_down_yields_a_transport_error_after_the_attempts() {
    // A socket bound and never listening: connections to it are refused,
    // and the port stays ours (a closed listener's port could be handed to
    // another test's receiver meanwhile, which would then answer).
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    let url = format!("http://127.0.0.1:{port}{PATH}");
    let started = Instant::now();
    let error = webhook(&url).send(&notice(), NOW).unwrap_err();
    match &error {
        WebhookError::Transport {
            origin, attempts, ..
        } => {
            assert_eq!(origin, &format!("http://127.0.0.1:{port}"));
            assert_eq!(*attempts, 3);
        }
        other => panic!("not a transport error: {other:?}"),
    }
    assert_eq!(error.attempts(), 3);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_clean(&error.to_string());
}

#[test]
fn an_attempt_that_times_out_is_retried() {
    let receiver = receiver(vec![
        Reply::Hang(Duration::from_secs(3)),
        Reply::Status(200),
    ]);
    let webhook = webhook(&receiver.url).with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let delivered = webhook.send(&notice(), NOW).unwrap();
    assert_eq!(delivered.attempts, 2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("X-Oathdesk-Delivery"),
        requests[1].header("X-Oathdesk-Delivery")
    );
}

#[test]
fn retry_after_is_honoured_and_each_attempt_is_signed_afresh() {
    let receiver = receiver(vec![
        Reply::With(429, "Retry-After: 1".into()),
        Reply::Status(200),
    ]);
    let started = Instant::now();
    let delivered = webhook(&receiver.url).send(&notice(), NOW).unwrap();
    assert_eq!(delivered.attempts, 2);
    // The backoff alone would have waited milliseconds.
    assert!(started.elapsed() >= Duration::from_secs(1));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].timestamp() > requests[0].timestamp());
    assert_ne!(
        requests[0].header("X-Oathdesk-Signature"),
        requests[1].header("X-Oathdesk-Signature")
    );
    assert_eq!(requests[1].verify(SECRET, requests[1].timestamp()), Ok(()));
}

#[test]
fn too_long_a_retry_after_ends_the_delivery() {
    let receiver = receiver(vec![
        Reply::With(503, "Retry-After: 3600".into()),
        Reply::Status(200),
    ]);
    let started = Instant::now();
    let error = webhook(&receiver.url).send(&notice(), NOW).unwrap_err();
    assert!(
        matches!(
            error,
            WebhookError::GaveUp {
                status: 503,
                attempts: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(receiver.requests().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn plain_http_is_refused_off_this_machine() {
    let secret = || Zeroizing::new(SECRET.to_vec());
    for (url, host) in [
        ("http://hooks.example.com/x", "hooks.example.com"),
        ("http://192.168.1.10:8080/x", "192.168.1.10"),
        ("http://[2001:db8::1]/x", "[2001:db8::1]"),
    ] {
        let error = Webhook::new(url, secret()).unwrap_err();
        assert_eq!(error, WebhookError::InsecureUrl { host: host.into() });
        assert!(error.to_string().contains("use https://"), "{error}");
    }
    for url in [
        "https://hooks.example.com/x",
        "http://127.0.0.1:8080/x",
        "http://[::1]:8080/x",
        "http://localhost:8080/x",
    ] {
        assert!(Webhook::new(url, secret()).is_ok(), "{url}");
    }
}

#[test]
fn debug_shows_the_origin_but_not_the_secret_or_the_path() {
    let webhook = webhook(&format!("https://hooks.example.com{PATH}"));
    let debug = format!("{webhook:?}");
    assert!(debug.contains("https://hooks.example.com"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert_clean(&debug);
    assert_clean(&format!("{webhook:#?}"));
}

#[test]
fn the_body_holds_the_documented_fields_and_nothing_else() {
    let documented = [
        "approver",
        "at",
        "event",
        "id",
        "method",
        "operator",
        "organisation",
        "reason",
        "report_to",
        "ticket",
        "user_display_name",
        "user_upn",
        "version",
    ];
    let receiver = receiver(vec![]);
    let webhook = webhook(&receiver.url);
    let mut bare = Notice::new("bare-1", Event::ApprovalRequested, NOW, "u@x", "op");
    bare.approver = Some("carol".into());
    webhook.send(&notice(), NOW).unwrap();
    webhook.send(&bare, NOW).unwrap();
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    for (request, notice) in requests.iter().zip([notice(), bare]) {
        let document: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&request.body).unwrap();
        let mut keys: Vec<&str> = document.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, documented);
        assert_eq!(document["version"], 1);
        assert_eq!(document["id"], notice.id.as_str());
        assert_eq!(document["event"], notice.event.name());
        assert_eq!(document["at"], notice.at);
        assert_eq!(document["approver"], serde_json::json!(notice.approver));
        assert_eq!(document["reason"], serde_json::Value::Null);
    }
}

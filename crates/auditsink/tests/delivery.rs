//! The shipper against real receivers on loopback: a syslog server over
//! UDP and TCP played by the test, which parses every message as RFC 5424
//! says, and a JSON-lines file. Entries arrive one per message, in seq
//! order; a receiver that is down and then starts gets all of them; a full
//! queue is reported with the exact range.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oathdesk_auditsink::{Facility, Report, Shipper, SinkSpec};
use oathdesk_vault::audit::AuditRecord;
use serde_json::Value;

fn record(seq: i64) -> AuditRecord {
    let hash = format!("{seq:064x}");
    AuditRecord {
        schema: "oathdesk.audit/1".into(),
        time: format!("2026-12-04T10:00:{:02}Z", seq % 60),
        at: 1_796_378_400 + seq as u64,
        seq,
        operator: "alice".into(),
        action: if seq % 3 == 0 {
            "forbidden"
        } else {
            "helpdesk.code"
        }
        .into(),
        outcome: if seq % 3 == 0 { "refused" } else { "granted" }.into(),
        user: Some("bob@contoso.com".into()),
        credential: Some("#1".into()),
        ticket: Some(format!("INC{seq}")),
        detail: serde_json::json!({"note": "quote \" and ] and \\ survive"}),
        epoch: 1,
        prev_hash: format!("{:064x}", seq - 1),
        audit_head: format!("{seq}:{hash}"),
        hash,
    }
}

/// One message taken apart by RFC 5424's grammar.
#[derive(Debug)]
struct Syslog {
    pri: u16,
    version: String,
    timestamp: String,
    hostname: String,
    app: String,
    procid: String,
    msgid: String,
    structured: String,
    json: Value,
}

fn parse(message: &str) -> Syslog {
    let rest = message.strip_prefix('<').expect("PRI opens with <");
    let (pri, rest) = rest.split_once('>').expect("PRI closes with >");
    let mut fields = rest.splitn(7, ' ');
    let mut next = || fields.next().expect("every header field").to_owned();
    let (version, timestamp, hostname, app, procid, msgid) =
        (next(), next(), next(), next(), next(), next());
    let rest = next();
    let (structured, msg) = if let Some(rest) = rest.strip_prefix("- ") {
        ("-".to_owned(), rest.to_owned())
    } else {
        let end = rest.find("] ").expect("SD element closes") + 1;
        (rest[..end].to_owned(), rest[end + 1..].to_owned())
    };
    Syslog {
        pri: pri.parse().expect("PRI is a number"),
        version,
        timestamp,
        hostname,
        app,
        procid,
        msgid,
        structured,
        json: serde_json::from_str(&msg).expect("MSG is one JSON object"),
    }
}

fn check_entry(message: &Syslog, seq: i64) {
    let expected = record(seq);
    // authpriv (10) × 8 + notice (5), or warning (4) for a refusal.
    let severity = if expected.outcome == "refused" { 4 } else { 5 };
    assert_eq!(message.pri, 80 + severity, "{message:?}");
    assert_eq!(message.version, "1");
    assert_eq!(message.timestamp, expected.time);
    assert!(!message.hostname.is_empty() && !message.hostname.contains(' '));
    assert_eq!(message.app, "oathdesk");
    assert_eq!(message.procid, std::process::id().to_string());
    assert_eq!(message.msgid, expected.action);
    assert_eq!(message.structured, format!("[meta sequenceId=\"{seq}\"]"));
    let back: AuditRecord = serde_json::from_value(message.json.clone()).unwrap();
    assert_eq!(back, expected);
}

/// Reads RFC 6587 octet-counted frames from every connection, in order.
fn tcp_receiver(listener: TcpListener) -> Arc<Mutex<Vec<String>>> {
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = frames.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut bytes = Vec::new();
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                bytes.extend_from_slice(&buffer[..n]);
                while let Some(space) = bytes.iter().position(|b| *b == b' ') {
                    let length: usize = std::str::from_utf8(&bytes[..space])
                        .unwrap()
                        .parse()
                        .expect("a frame starts with its length");
                    if bytes.len() < space + 1 + length {
                        break;
                    }
                    let frame =
                        String::from_utf8(bytes[space + 1..space + 1 + length].to_vec()).unwrap();
                    bytes.drain(..space + 1 + length);
                    sink.lock().unwrap().push(frame);
                }
            }
        }
    });
    frames
}

fn wait_for(frames: &Mutex<Vec<String>>, count: usize, what: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames.lock().unwrap().len() < count {
        assert!(
            Instant::now() < deadline,
            "{what}: only {:?}",
            frames.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    frames.lock().unwrap().clone()
}

fn reports() -> (
    Arc<Mutex<Vec<Report>>>,
    impl Fn(&Report) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (seen, move |report: &Report| {
        sink.lock().unwrap().push(report.clone())
    })
}

#[test]
fn udp_carries_one_rfc_5424_message_per_entry_in_order() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let spec = SinkSpec::SyslogUdp {
        address: receiver.local_addr().unwrap().to_string(),
        facility: Facility::AUTHPRIV,
    };
    let shipper = Shipper::start(vec![spec], |_| {});
    for seq in 1..=6 {
        shipper.submit(&record(seq));
    }
    assert!(shipper.flush(Duration::from_secs(10)).is_empty());
    for seq in 1..=6 {
        let mut datagram = [0u8; 65_536];
        let n = receiver.recv(&mut datagram).expect("a datagram per entry");
        check_entry(&parse(std::str::from_utf8(&datagram[..n]).unwrap()), seq);
    }
}

#[test]
fn tcp_frames_by_octet_counting_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let spec: SinkSpec = format!(
        "syslog+tcp://{}?facility=local3",
        listener.local_addr().unwrap()
    )
    .parse()
    .unwrap();
    let frames = tcp_receiver(listener);
    let shipper = Shipper::start(vec![spec], |_| {});
    for seq in 1..=5 {
        shipper.submit(&record(seq));
    }
    let frames = wait_for(&frames, 5, "five frames");
    for (seq, frame) in (1..).zip(&frames) {
        let message = parse(frame);
        // local3 (19) × 8 + severity.
        assert_eq!(message.pri / 8, 19);
        assert_eq!(message.json["seq"], seq);
        assert_eq!(message.msgid, record(seq).action);
    }
}

/// A loopback port with nothing listening on it yet: bound, so that no
/// other test is handed it before this one starts its receiver there.
struct ClosedPort(socket2::Socket);

impl ClosedPort {
    fn new() -> ClosedPort {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        ClosedPort(socket)
    }

    fn address(&self) -> std::net::SocketAddr {
        self.0.local_addr().unwrap().as_socket().unwrap()
    }

    /// The receiver starts: connections are taken from now on.
    fn listen(self) -> TcpListener {
        self.0.listen(128).unwrap();
        self.0.into()
    }
}

#[test]
fn a_receiver_down_for_a_while_gets_every_entry_when_it_starts() {
    let port = ClosedPort::new();
    let address = port.address();
    let (seen, report) = reports();
    let shipper = Shipper::start(
        vec![SinkSpec::SyslogTcp {
            address: address.to_string(),
            facility: Facility::AUTHPRIV,
        }],
        report,
    );
    for seq in 1..=8 {
        shipper.submit(&record(seq));
    }
    // Down: nothing delivered, and said so.
    let undelivered = shipper.flush(Duration::from_millis(800));
    assert_eq!(undelivered.len(), 1);
    assert_eq!(undelivered[0].from, 1);
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|r| matches!(r, Report::Down { seq: Some(1), .. })),
        "{:?}",
        seen.lock().unwrap()
    );
    let frames = tcp_receiver(port.listen());
    let frames = wait_for(&frames, 8, "all eight after the start");
    let seqs: Vec<i64> = frames
        .iter()
        .map(|f| parse(f).json["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    assert!(shipper.flush(Duration::from_secs(5)).is_empty());
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|r| matches!(r, Report::Back { .. }))
    );
}

/// What the sink got, walked in order: every seq from 1 to `last` exactly
/// once, either as its entry or inside exactly one gap line, and a gap line
/// only for seqs the sink does not get. Returns the gap lines' ranges.
fn walk(frames: &[String], last: i64) -> Vec<(i64, i64)> {
    let mut expected = 1;
    let mut gaps = Vec::new();
    for frame in frames {
        let message = parse(frame);
        if message.json["schema"] == "oathdesk.audit.gap/1" {
            assert_eq!(message.msgid, "audit.gap");
            assert_eq!(message.pri, 84, "authpriv.warning");
            assert_eq!(message.structured, "-");
            assert!(message.json.get("audit_head").is_none());
            let from = message.json["missing_from"].as_i64().unwrap();
            let to = message.json["missing_to"].as_i64().unwrap();
            assert_eq!(
                from, expected,
                "a gap starts at the first seq not yet seen: {frames:?}"
            );
            assert!(to >= from, "{frames:?}");
            gaps.push((from, to));
            expected = to + 1;
        } else {
            check_entry(&message, expected);
            expected += 1;
        }
    }
    assert_eq!(expected, last + 1, "every seq up to {last}: {frames:?}");
    gaps
}

/// How far the frames account for, entries and gaps alike.
fn covered(frames: &[String]) -> i64 {
    frames
        .iter()
        .map(|frame| {
            let json = parse(frame).json;
            json.get("missing_to")
                .or_else(|| json.get("seq"))
                .and_then(Value::as_i64)
                .unwrap()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn a_full_queue_is_reported_with_the_exact_range() {
    let port = ClosedPort::new();
    let address = port.address();
    let (seen, report) = reports();
    let shipper = Shipper::with_capacity(
        vec![SinkSpec::SyslogTcp {
            address: address.to_string(),
            facility: Facility::AUTHPRIV,
        }],
        2,
        report,
    );
    for seq in 1..=10 {
        shipper.submit(&record(seq));
    }
    let dropped_first = seen
        .lock()
        .unwrap()
        .iter()
        .find_map(|r| match r {
            Report::Dropped { seq, .. } => Some(*seq),
            _ => None,
        })
        .expect("the overflow is reported at once");
    // The sender holds at most one entry besides the queue's two.
    assert!((3..=4).contains(&dropped_first), "{dropped_first}");
    let received = tcp_receiver(port.listen());
    // The kept entries and the gap lines account for all ten (the sender
    // may free room while a gap is open: the entry that takes it is sent,
    // and the gap lines around it leave it out).
    let deadline = Instant::now() + Duration::from_secs(30);
    while covered(&received.lock().unwrap()) < 10 {
        assert!(Instant::now() < deadline, "{:?}", received.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Later entries flow again, after the gap lines.
    shipper.submit(&record(11));
    let deadline = Instant::now() + Duration::from_secs(30);
    while covered(&received.lock().unwrap()) < 11 {
        assert!(Instant::now() < deadline, "{:?}", received.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(shipper.flush(Duration::from_secs(5)).is_empty());
    let frames = received.lock().unwrap().clone();
    let gaps = walk(&frames, 11);
    assert!(!gaps.is_empty(), "entries were dropped: {frames:?}");
    assert_eq!(gaps[0].0, dropped_first);
    assert_eq!(gaps.last().unwrap().1, 10, "the last drop was entry 10");
    assert!(
        frames
            .iter()
            .take(2)
            .all(|f| parse(f).json.get("seq").is_some()),
        "the first two entries were queued: {frames:?}"
    );
    let reported: Vec<(i64, i64)> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| match r {
            Report::GapReported { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(reported, gaps, "the process log hears of each gap line");
    let dropped = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| matches!(r, Report::Dropped { .. }))
        .count();
    assert_eq!(dropped, gaps.len(), "one Dropped report per gap");
}

#[test]
fn the_file_is_owner_only_and_holds_every_entry() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let shipper = Shipper::start(vec![SinkSpec::File(path.clone())], |_| {});
    for seq in 1..=4 {
        shipper.submit(&record(seq));
    }
    assert!(shipper.flush(Duration::from_secs(10)).is_empty());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let lines: Vec<AuditRecord> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, (1..=4).map(record).collect::<Vec<_>>());
}

//! Delivery off the committing thread: a bounded queue and a sender thread
//! per sink.
//!
//! The vault's entry is committed before the shipper sees it, so nothing a
//! sink does can lose or delay it. What the shipper promises about the
//! copy in the sink:
//!
//! - **in order**: one thread per sink sends its queue one line at a time,
//!   and a line that fails is retried (backoff from 200 ms doubling to 5 s)
//!   until it goes, before the next;
//! - **never blocking**: the queue holds [`Shipper::CAPACITY`] entries per
//!   sink; an entry that finds it full is dropped *for that sink* and its
//!   seq joins the current gap (an entry queued again closes the gap, so a
//!   gap line never names an entry the sink gets);
//! - **gaps reported, exactly**: the process log gets
//!   [`Report::Dropped`] at once, and once the sink takes lines again it
//!   gets a gap line (`oathdesk.audit.gap/1`, `missing_from`,
//!   `missing_to`) before the first entry after the gap; `oathdesk audit
//!   ship --from SEQ` sends the range again from the vault.
//!
//! A sink over UDP cannot know whether a datagram arrived: use TCP or a
//! file where every entry must be there.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oathdesk_vault::audit::AuditRecord;

use crate::connection::{Connection, Line};
use crate::gaps::Gaps;
use crate::spec::SinkSpec;

/// What the shipper tells the process log. The front-end words it (a
/// tracing line in the console, stderr on the command line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The sink refused entry `seq`; it is retried.
    Down {
        sink: String,
        seq: Option<i64>,
        error: String,
    },
    /// The sink takes lines again.
    Back { sink: String },
    /// The queue was full: entry `seq` will not reach the sink by this
    /// shipper (the first of a gap; the gap line gives the whole range).
    Dropped { sink: String, seq: i64 },
    /// The gap line `from..=to` went to the sink.
    GapReported { sink: String, from: i64, to: i64 },
}

/// Entries a sink had not taken when [`Shipper::flush`] gave up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undelivered {
    pub sink: String,
    /// The first entry it lacks (`audit ship --from`).
    pub from: i64,
}

type Reporter = Arc<dyn Fn(&Report) + Send + Sync>;

/// Sends committed entries to its sinks; clone-free, share it in an `Arc`.
pub struct Shipper {
    lanes: Vec<Lane>,
    report: Reporter,
}

struct Lane {
    queue: SyncSender<AuditRecord>,
    state: Arc<LaneState>,
}

#[derive(Default)]
struct LaneState {
    name: String,
    /// Entries queued and not yet sent.
    pending: AtomicUsize,
    /// The oldest entry not yet sent (0: none known).
    oldest_unsent: AtomicI64,
    /// Entries dropped from a full queue and not yet reported to the sink.
    gaps: Mutex<Gaps>,
}

/// Backoff between retries of a line a sink refused.
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(5);

impl Shipper {
    /// Entries each sink's queue holds before it drops (and reports) them.
    pub const CAPACITY: usize = 10_000;

    /// Starts a sender thread per sink.
    pub fn start(
        sinks: Vec<SinkSpec>,
        report: impl Fn(&Report) + Send + Sync + 'static,
    ) -> Shipper {
        Shipper::with_capacity(sinks, Shipper::CAPACITY, report)
    }

    /// [`Shipper::start`] with another queue size (the tests fill it).
    pub fn with_capacity(
        sinks: Vec<SinkSpec>,
        capacity: usize,
        report: impl Fn(&Report) + Send + Sync + 'static,
    ) -> Shipper {
        let report: Reporter = Arc::new(report);
        let lanes = sinks
            .into_iter()
            .map(|spec| {
                let (queue, receiver) = sync_channel(capacity);
                let state = Arc::new(LaneState {
                    name: spec.to_string(),
                    ..LaneState::default()
                });
                let sender_state = state.clone();
                let lane_report = report.clone();
                std::thread::Builder::new()
                    .name(format!("audit sink {spec}"))
                    .spawn(move || {
                        send_all(
                            Connection::new(spec),
                            receiver,
                            &sender_state,
                            &*lane_report,
                        )
                    })
                    .expect("a thread starts");
                Lane { queue, state }
            })
            .collect();
        Shipper { lanes, report }
    }

    /// Starts a shipper and makes it the vault's record sink: from now on
    /// every entry this process commits is queued for `sinks`.
    pub fn install(
        sinks: Vec<SinkSpec>,
        report: impl Fn(&Report) + Send + Sync + 'static,
    ) -> Arc<Shipper> {
        let shipper = Arc::new(Shipper::start(sinks, report));
        let queued = shipper.clone();
        oathdesk_vault::audit::set_record_sink(move |record| queued.submit(record));
        shipper
    }

    /// Queues a committed entry for every sink; returns at once.
    pub fn submit(&self, record: &AuditRecord) {
        for lane in &self.lanes {
            lane.state.pending.fetch_add(1, Ordering::SeqCst);
            // Held across the attempt so that the gaps know exactly which
            // entries were queued between which drops.
            let mut gaps = lane.state.gaps();
            match lane.queue.try_send(record.clone()) {
                Ok(()) => gaps.queued(),
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    lane.state.pending.fetch_sub(1, Ordering::SeqCst);
                    let first = gaps.dropped(record.seq);
                    drop(gaps);
                    if first {
                        (self.report)(&Report::Dropped {
                            sink: lane.state.name.clone(),
                            seq: record.seq,
                        });
                    }
                }
            }
        }
    }

    /// Waits until every sink took its queue, or `timeout`; returns the
    /// sinks that had not, and from which entry (a short-lived command
    /// calls this before it exits).
    pub fn flush(&self, timeout: Duration) -> Vec<Undelivered> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && self.lanes.iter().any(|lane| lane.unfinished()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.lanes
            .iter()
            .filter(|lane| lane.unfinished())
            .map(|lane| {
                let oldest = lane.state.oldest_unsent.load(Ordering::SeqCst);
                let from = match lane.state.gaps().oldest() {
                    Some(from) if oldest == 0 || from < oldest => from,
                    _ => oldest,
                };
                Undelivered {
                    sink: lane.state.name.clone(),
                    from,
                }
            })
            .collect()
    }
}

impl Lane {
    fn unfinished(&self) -> bool {
        self.state.pending.load(Ordering::SeqCst) > 0 || !self.state.gaps().is_empty()
    }
}

impl LaneState {
    fn gaps(&self) -> std::sync::MutexGuard<'_, Gaps> {
        self.gaps.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sender thread: each entry in turn, a pending gap line first for
/// every dropped range that starts before the next entry (or all of them
/// when the queue is idle).
fn send_all(
    mut connection: Connection,
    queue: Receiver<AuditRecord>,
    state: &LaneState,
    report: &(dyn Fn(&Report) + Send + Sync),
) {
    let mut down = false;
    loop {
        let next = match queue.recv_timeout(Duration::from_millis(200)) {
            Ok(record) => Some(record),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if let Some(record) = &next {
            let _ = state.oldest_unsent.compare_exchange(
                0,
                record.seq,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
        let before = next.as_ref().map(|record| record.seq);
        loop {
            // Bound first: the lock must not be held while the line is sent.
            let due = state.gaps().due(before);
            let Some((from, to)) = due else { break };
            let line = Line::Gap {
                from,
                to,
                at: now(),
            };
            deliver(&mut connection, &line, &mut down, state, report);
            // Entries dropped into the range while the line was sent stay
            // for the next line.
            state.gaps().reported(from, to);
            report(&Report::GapReported {
                sink: state.name.clone(),
                from,
                to,
            });
        }
        if let Some(record) = next {
            deliver(
                &mut connection,
                &Line::Entry(Box::new(record)),
                &mut down,
                state,
                report,
            );
            state.oldest_unsent.store(0, Ordering::SeqCst);
            state.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Sends one line, retrying with backoff until the sink takes it.
fn deliver(
    connection: &mut Connection,
    line: &Line,
    down: &mut bool,
    state: &LaneState,
    report: &(dyn Fn(&Report) + Send + Sync),
) {
    let mut wait = FIRST_RETRY;
    loop {
        match connection.send(line) {
            Ok(()) => {
                if *down {
                    *down = false;
                    report(&Report::Back {
                        sink: state.name.clone(),
                    });
                }
                return;
            }
            Err(error) => {
                if !*down {
                    *down = true;
                    report(&Report::Down {
                        sink: state.name.clone(),
                        seq: line.seq(),
                        error: error.to_string(),
                    });
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(LAST_RETRY);
            }
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl std::fmt::Display for Report {
    /// A sentence for the process log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Report::Down { sink, seq, error } => {
                let what = seq.map_or("a gap report".to_owned(), |seq| {
                    format!("audit entry {seq}")
                });
                write!(
                    f,
                    "audit sink {sink} is down ({error}): {what} is kept and retried, later entries wait behind it"
                )
            }
            Report::Back { sink } => write!(f, "audit sink {sink} takes entries again"),
            Report::Dropped { sink, seq } => write!(
                f,
                "audit sink {sink}: its queue is full, entry {seq} and those after it until it drains \
                 will not be sent (they stay in the vault; the sink gets a gap line with the range, \
                 and 'oathdesk audit ship --to {sink} --from {seq}' sends them)"
            ),
            Report::GapReported { sink, from, to } => write!(
                f,
                "audit sink {sink} is told that entries {from} to {to} are missing; \
                 send them with 'oathdesk audit ship --to {sink} --from {from}'"
            ),
        }
    }
}

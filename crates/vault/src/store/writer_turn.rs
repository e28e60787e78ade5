//! One writer at a time per SQLite vault file, queued in this process.
//!
//! SQLite lets one connection write at a time. A connection that finds
//! the file locked sleeps in its busy handler with growing pauses, so
//! under load (the console, with a pool of connections) writers wait far
//! longer than the write takes. Connections of this process to one file
//! therefore take turns here first, for exactly as long as their write
//! transaction lasts, and are served without those pauses. Reads never
//! wait; other processes still meet the busy timeout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, PoisonError};

#[derive(Default)]
struct Gate {
    busy: Mutex<bool>,
    free: Condvar,
}

/// The turn of one write transaction; the next writer goes when it drops.
pub(crate) struct WriterTurn {
    gate: Arc<Gate>,
}

static GATES: LazyLock<Mutex<HashMap<PathBuf, Arc<Gate>>>> = LazyLock::new(Default::default);

impl WriterTurn {
    /// Waits for the turn to write to the vault file at `path`.
    pub(crate) fn take(path: &Path) -> WriterTurn {
        // One file by any name (relative, through a link) has one turn.
        let file = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let gate = GATES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(file)
            .or_default()
            .clone();
        let mut busy = gate.busy.lock().unwrap_or_else(PoisonError::into_inner);
        while *busy {
            busy = gate.free.wait(busy).unwrap_or_else(PoisonError::into_inner);
        }
        *busy = true;
        drop(busy);
        WriterTurn { gate }
    }
}

impl Drop for WriterTurn {
    fn drop(&mut self) {
        *self
            .gate
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = false;
        self.gate.free.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_writer_at_a_time_per_file_and_files_apart() {
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (inside, most) = (inside.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _turn = WriterTurn::take(Path::new("/tmp/one-vault.db"));
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        if i % 2 == 0 {
                            std::thread::yield_now();
                        }
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        // Another file has its own turn: taking it does not wait.
        let _a = WriterTurn::take(Path::new("/tmp/a.db"));
        let _b = WriterTurn::take(Path::new("/tmp/b.db"));
    }
}

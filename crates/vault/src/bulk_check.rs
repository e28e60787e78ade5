//! Checking many signed rows of one kind at once (every credential and
//! every drift sighting of a fleet report): one read of the kind's MACs,
//! and the expected MACs computed on every core. A fleet has millions of
//! sightings; one HMAC-SHA256 each on one thread was most of the report.

use std::collections::HashMap;

/// Below this many rows the threads cost more than they save.
const PARALLEL_FROM: usize = 4096;

/// The cores to check on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The index of the first of `rows` whose MAC, as `sign` computes it (its
/// id and MAC), is not the one `stored` holds under that id — or `None`
/// when every row carries its signature. The rows are split into `threads`
/// runs of consecutive rows checked side by side; the answer does not
/// depend on `threads` (the lowest failing index wins).
pub fn first_mismatch<T, F>(
    rows: &[T],
    stored: &HashMap<String, Vec<u8>>,
    threads: usize,
    sign: F,
) -> Option<usize>
where
    T: Sync,
    F: Fn(&T) -> (String, Vec<u8>) + Sync,
{
    let run = |rows: &[T]| {
        rows.iter().position(|row| {
            let (id, mac) = sign(row);
            !stored
                .get(&id)
                .is_some_and(|kept| crate::signed::same(kept, &mac))
        })
    };
    if threads <= 1 || rows.len() < PARALLEL_FROM {
        return run(rows);
    }
    let chunk = rows.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = rows
            .chunks(chunk)
            .map(|part| scope.spawn(|| run(part)))
            .collect();
        workers
            .into_iter()
            .enumerate()
            .filter_map(|(n, worker)| {
                worker
                    .join()
                    .expect("a signature-checking worker panicked")
                    .map(|i| n * chunk + i)
            })
            .min()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in MAC: the id twice.
    fn sign(n: &u32) -> (String, Vec<u8>) {
        (n.to_string(), n.to_string().repeat(2).into_bytes())
    }

    #[test]
    fn the_first_bad_row_is_found_whatever_the_threads() {
        let rows: Vec<u32> = (0..20_000).collect();
        let mut stored: HashMap<String, Vec<u8>> = rows.iter().map(sign).collect();
        for threads in [1, 2, 3, 8] {
            assert_eq!(first_mismatch(&rows, &stored, threads, sign), None);
        }
        // One altered late, one missing early (in another thread's run).
        stored.insert("17000".into(), b"forged".to_vec());
        stored.remove("6001");
        for threads in [1, 2, 3, 8] {
            assert_eq!(
                first_mismatch(&rows, &stored, threads, sign),
                Some(6001),
                "{threads} threads"
            );
        }
        stored.insert("6001".into(), sign(&6001).1);
        for threads in [1, 2, 7] {
            assert_eq!(first_mismatch(&rows, &stored, threads, sign), Some(17000));
        }
    }
}

//! Which entries a sink's queue dropped, as the ranges its gap lines name.
//!
//! A range holds only seqs dropped one after another with no entry queued
//! between them: when the sender frees room while a gap is open, the next
//! entry is queued and sent, so a single `first..=last` of every drop would
//! name an entry the sink does get. Pure bookkeeping; the shipper holds it
//! under a lock and sends the lines.

use std::collections::VecDeque;

/// Dropped ranges not yet reported to the sink, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Gaps {
    ranges: VecDeque<(i64, i64)>,
    /// An entry was queued since the last drop: the next drop opens a new
    /// range.
    closed: bool,
}

impl Gaps {
    /// An entry went into the queue.
    pub fn queued(&mut self) {
        self.closed = true;
    }

    /// Entry `seq` found the queue full; true when it opens a range (the
    /// process log hears of the first of each).
    pub fn dropped(&mut self, seq: i64) -> bool {
        match self.ranges.back_mut() {
            Some((from, to)) if !self.closed => {
                *from = (*from).min(seq);
                *to = (*to).max(seq);
                false
            }
            _ => {
                self.ranges.push_back((seq, seq));
                self.closed = false;
                true
            }
        }
    }

    /// The oldest range to report before entry `next` (or, with none, when
    /// the queue is idle): a range that starts before it.
    pub fn due(&self, next: Option<i64>) -> Option<(i64, i64)> {
        let &(from, to) = self.ranges.front()?;
        next.is_none_or(|seq| from < seq).then_some((from, to))
    }

    /// The gap line `from..=to` went out: what was dropped into that range
    /// meanwhile stays for the next line.
    pub fn reported(&mut self, from: i64, to: i64) {
        match self.ranges.front_mut() {
            Some(front) if *front == (from, to) => {
                self.ranges.pop_front();
            }
            Some(front) if front.0 == from && front.1 > to => front.0 = to + 1,
            _ => {}
        }
    }

    /// The oldest seq a gap line still has to name.
    pub fn oldest(&self) -> Option<i64> {
        self.ranges.front().map(|&(from, _)| from)
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::Gaps;

    /// Drains what the sender would report before `next`.
    fn report_before(gaps: &mut Gaps, next: Option<i64>) -> Vec<(i64, i64)> {
        let mut lines = Vec::new();
        while let Some((from, to)) = gaps.due(next) {
            gaps.reported(from, to);
            lines.push((from, to));
        }
        lines
    }

    #[test]
    fn drops_in_a_row_make_one_range() {
        let mut gaps = Gaps::default();
        assert!(gaps.dropped(3));
        for seq in 4..=10 {
            assert!(!gaps.dropped(seq), "{seq} extends the open range");
        }
        assert_eq!(report_before(&mut gaps, Some(11)), [(3, 10)]);
        assert!(gaps.is_empty());
    }

    /// The race a single first..=last range got wrong: 3 dropped, the
    /// sender frees room, 4 is queued, 5..=10 dropped. The sink must hear
    /// "3 missing", then gets 4, then "5 to 10 missing" — never "3 to 10".
    #[test]
    fn an_entry_queued_between_drops_splits_the_gap() {
        let mut gaps = Gaps::default();
        assert!(gaps.dropped(3));
        gaps.queued();
        assert!(gaps.dropped(5), "a new range opens after a queued entry");
        for seq in 6..=10 {
            assert!(!gaps.dropped(seq));
        }
        assert_eq!(gaps.oldest(), Some(3));
        assert_eq!(report_before(&mut gaps, Some(4)), [(3, 3)]);
        assert_eq!(report_before(&mut gaps, Some(4)), []);
        assert_eq!(report_before(&mut gaps, None), [(5, 10)]);
        assert!(gaps.is_empty());
    }

    #[test]
    fn an_entry_before_the_gap_is_sent_first() {
        let mut gaps = Gaps::default();
        gaps.dropped(5);
        assert_eq!(
            gaps.due(Some(2)),
            None,
            "entry 2 was queued before the drop"
        );
        assert_eq!(gaps.due(Some(6)), Some((5, 5)));
    }

    #[test]
    fn drops_while_the_line_is_sent_are_the_next_line() {
        let mut gaps = Gaps::default();
        gaps.dropped(3);
        gaps.dropped(4);
        let line = gaps.due(None).unwrap();
        // Dropped while the line was on its way.
        gaps.dropped(5);
        gaps.dropped(6);
        gaps.reported(line.0, line.1);
        assert_eq!(report_before(&mut gaps, None), [(5, 6)]);
    }

    #[test]
    fn after_every_range_is_reported_a_drop_opens_a_new_one() {
        let mut gaps = Gaps::default();
        gaps.dropped(3);
        assert_eq!(report_before(&mut gaps, None), [(3, 3)]);
        assert!(gaps.dropped(9), "a new range, reported to the process log");
        assert_eq!(report_before(&mut gaps, None), [(9, 9)]);
    }
}

//! The planner's statistics after a bulk write: `ANALYZE` of the tables a
//! transaction filled, right after its commit.
//!
//! PostgreSQL plans a statement from statistics that `ANALYZE` gathers,
//! and autovacuum gathers them only when its launcher next visits the
//! database (a minute apart by default). Until then a table that an import
//! made a hundred times larger is planned as it was. Measured on two cores
//! (BENCHMARKS.md): right after a 100,000-token import into a vault of
//! 1,000, the helpdesk's read of one request joined every credential to
//! its device before picking the user's (a plan chosen when each user
//! seemed to have hundreds of credentials): 70 ms where it had taken
//! 1 ms, and the helpdesk's p99 at 70–100 ms for the minute after. With
//! the statistics gathered at the import's commit, the plans made after
//! it (and the prepared statements' plans, which `ANALYZE` invalidates)
//! look the user up first.
//!
//! A table is analysed when the transaction wrote [`ANALYZE_FROM`] rows
//! or more to it and those are a tenth of it or more (as autovacuum's
//! own rule, without its wait). The import has committed by then: a
//! failed `ANALYZE` (a role that does not own the table gets a warning and
//! no statistics) loses nothing, and autovacuum does it later.

use ::postgres::Client;

/// Rows written to a table in one transaction from which it may be
/// analysed at the commit.
pub(super) const ANALYZE_FROM: usize = 1000;

/// The statistics target of that `ANALYZE` (a sample of 300 rows per
/// unit: 3,000).
const SAMPLE_TARGET: u32 = 10;

/// Rows a transaction wrote in bulk, by table.
#[derive(Default)]
pub(super) struct Bulk {
    rows: Vec<(&'static str, usize)>,
}

impl Bulk {
    pub(super) fn add(&mut self, table: &'static str, rows: usize) {
        match self.rows.iter_mut().find(|(name, _)| *name == table) {
            Some((_, count)) => *count += rows,
            None => self.rows.push((table, rows)),
        }
    }

    /// The tables written [`ANALYZE_FROM`] rows or more, with their rows.
    fn large(&self) -> Vec<(&'static str, usize)> {
        self.rows
            .iter()
            .copied()
            .filter(|(_, rows)| *rows >= ANALYZE_FROM)
            .collect()
    }
}

/// Whether `written` rows make a table of `estimated` rows (`None`: never
/// analysed) worth analysing now.
fn stale(written: usize, estimated: Option<f64>) -> bool {
    match estimated {
        Some(rows) if rows >= 0.0 => written as f64 >= rows / 10.0,
        _ => true,
    }
}

/// Analyses the tables `bulk` changed enough, after the commit, on the
/// connection that wrote them. Errors are left to autovacuum.
pub(super) fn refresh(client: &mut Client, bulk: &Bulk) {
    let large = bulk.large();
    if large.is_empty() {
        return;
    }
    let names: Vec<&str> = large.iter().map(|(name, _)| *name).collect();
    // The planner's row estimate of each: -1 for a table never analysed.
    let Ok(estimates) = client.query(
        "SELECT relname::text, reltuples::float8 FROM pg_class \
         WHERE oid = ANY($1::text[]::regclass[])",
        &[&names],
    ) else {
        return;
    };
    let stale: Vec<&str> = large
        .iter()
        .filter(|(name, written)| {
            let estimated = estimates
                .iter()
                .find(|row| row.get::<_, String>(0) == *name)
                .map(|row| row.get::<_, f64>(1));
            stale(*written, estimated)
        })
        .map(|(name, _)| *name)
        .collect();
    if !stale.is_empty() {
        // Our own table names, not input. A sample of 3,000 rows a table
        // (not the default 30,000): enough for the sizes and the distinct
        // values the plans turn on, at a fifth of the time (0.04 s for
        // four tables of 100,000 rows against 0.19 s); autovacuum's own
        // ANALYZE refines them later. The setting is the transaction's
        // (`SET LOCAL`): an ANALYZE that fails leaves the connection as
        // it was.
        let analysed = client.batch_execute(&format!(
            "BEGIN; SET LOCAL default_statistics_target = {SAMPLE_TARGET}; ANALYZE {}; COMMIT",
            stale.join(", ")
        ));
        if analysed.is_err() {
            let _ = client.batch_execute("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_analysed_when_a_bulk_write_is_a_tenth_of_it() {
        let mut bulk = Bulk::default();
        bulk.add("users", 600);
        bulk.add("credentials", 999);
        bulk.add("users", 600);
        assert_eq!(bulk.large(), [("users", 1200)], "added up, and large only");
        assert!(stale(1200, None), "never analysed");
        assert!(stale(1200, Some(-1.0)), "never analysed");
        assert!(stale(1200, Some(12_000.0)));
        assert!(!stale(1200, Some(12_001.0)));
    }

    #[test]
    fn a_bulk_write_leaves_the_tables_it_filled_analysed() {
        use crate::model::User;
        use crate::store::postgres::PgStore;
        use crate::store::{Store, StoreTx};
        use crate::testing::ScratchSchema;

        let schema = ScratchSchema::new();
        let mut store = PgStore::create(&schema.url()).unwrap();
        let estimate = |store: &mut PgStore, table: &str| -> f64 {
            store
                .client
                .query_one(
                    "SELECT reltuples::float8 FROM pg_class WHERE oid = $1::text::regclass",
                    &[&table],
                )
                .unwrap()
                .get(0)
        };
        let add_users = |store: &mut PgStore, from: usize, count: usize| {
            let tx = store.write().unwrap();
            let ids = tx.user_ids(count).unwrap();
            let users: Vec<User> = ids
                .iter()
                .enumerate()
                .map(|(n, id)| User {
                    id: *id,
                    upn: format!("u{}@contoso.com", from + n),
                    display_name: None,
                    created_at: 1,
                })
                .collect();
            tx.users_insert(&users, &vec![vec![0; 32]; count]).unwrap();
            tx.commit().unwrap();
        };
        assert!(estimate(&mut store, "users") < 0.0, "never analysed");
        // A few rows are left to autovacuum.
        add_users(&mut store, 0, 100);
        assert!(estimate(&mut store, "users") < 0.0);
        // A bulk write is analysed at its commit: the table's, not others'.
        add_users(&mut store, 100, 1500);
        assert_eq!(estimate(&mut store, "users"), 1600.0);
        assert!(estimate(&mut store, "credentials") < 0.0);
        // The small sample was the ANALYZE's only, not the connection's.
        let target: String = store
            .client
            .query_one("SHOW default_statistics_target", &[])
            .unwrap()
            .get(0);
        assert_eq!(target, "100");
        assert!(!store.client.is_closed());
    }
}

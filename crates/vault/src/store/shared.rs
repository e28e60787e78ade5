//! What the stores of one vault in this process share: its writer (group
//! commit), and on PostgreSQL its write combiner and its read turns. Made
//! at first need and kept while a store holds it, by a key that names the
//! vault (a SQLite file's identity, a PostgreSQL URL as given).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// The `T` of each vault, by its key.
pub(crate) struct PerVault<K, T> {
    all: Mutex<HashMap<K, Weak<T>>>,
}

impl<K, T> Default for PerVault<K, T> {
    fn default() -> Self {
        PerVault {
            all: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, T: Default> PerVault<K, T> {
    /// The `T` of the vault `key` names, shared with every store of this
    /// process that holds it; a new one if none does. (Those no store
    /// holds any more are forgotten on the way.)
    pub(crate) fn of<Q>(&self, key: &Q) -> Arc<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|_, shared| shared.strong_count() > 0);
        if let Some(shared) = all.get(key).and_then(Weak::upgrade) {
            return shared;
        }
        let shared = Arc::new(T::default());
        all.insert(key.to_owned(), Arc::downgrade(&shared));
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Thing;

    #[test]
    fn one_per_vault_while_held_and_a_new_one_after() {
        let per_vault: PerVault<String, Thing> = PerVault::default();
        let first = per_vault.of("a");
        assert!(Arc::ptr_eq(&first, &per_vault.of("a")), "shared");
        assert!(!Arc::ptr_eq(&first, &per_vault.of("b")), "one per vault");
        let weak = Arc::downgrade(&first);
        drop(first);
        assert!(weak.upgrade().is_none(), "not kept by the map");
        per_vault.of("c");
        assert_eq!(
            per_vault.all.lock().unwrap().len(),
            1,
            "those nobody holds are forgotten"
        );
    }
}

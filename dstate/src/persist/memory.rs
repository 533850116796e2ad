//! In-memory persistence for tests, with fault injection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{PersistedShard, StatePersistence};
use crate::error::PersistError;
use crate::runtime::BoxFuture;

/// Shards kept in memory. Clones share the same store, so a "restarted" node built from a
/// clone sees what the "crashed" one saved. `fail_next_saves(n)` makes the next `n` saves fail.
#[derive(Debug, Clone, Default)]
pub struct InMemoryPersistence {
    shards: Arc<Mutex<HashMap<String, PersistedShard>>>,
    failures: Arc<AtomicUsize>,
    saves: Arc<AtomicUsize>,
}

impl InMemoryPersistence {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the next `count` saves fail with [`PersistError::Injected`].
    pub fn fail_next_saves(&self, count: usize) {
        self.failures.store(count, Ordering::SeqCst);
    }

    /// The stored shard of `state`.
    pub fn stored(&self, state: &str) -> Option<PersistedShard> {
        self.lock().get(state).cloned()
    }

    /// Put a shard in the store directly (e.g. data "written by an older version").
    pub fn insert(&self, state: &str, shard: PersistedShard) {
        self.lock().insert(state.to_owned(), shard);
    }

    /// Number of successful saves so far.
    pub fn save_count(&self) -> usize {
        self.saves.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PersistedShard>> {
        // A panic while holding this lock can only come from a bug in this file; the map
        // stays consistent (single inserts), so a poisoned lock is still usable.
        self.shards
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take_failure(&self) -> bool {
        self.failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl StatePersistence for InMemoryPersistence {
    fn load<'a>(
        &'a self,
        state: &'a str,
    ) -> BoxFuture<'a, Result<Option<PersistedShard>, PersistError>> {
        let found = self.stored(state);
        Box::pin(async move { Ok(found) })
    }

    fn save<'a>(
        &'a self,
        state: &'a str,
        shard: &'a PersistedShard,
    ) -> BoxFuture<'a, Result<(), PersistError>> {
        let result = if self.take_failure() {
            Err(PersistError::Injected(format!("save of {state} failed")))
        } else {
            self.lock().insert(state.to_owned(), shard.clone());
            self.saves.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        Box::pin(async move { result })
    }
}

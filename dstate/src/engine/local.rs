//! The own shard: mutations, persistence batches, commit and rollback.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::{Engine, EngineEvent, PersistRequest, Start};
use crate::error::{MutationError, PersistError};
use crate::ids::Generation;
use crate::persist::PersistedShard;
use crate::state::DeltaDistributedState;

/// A mutation waiting for the save in flight to finish.
type Apply<D, T> = Box<
    dyn FnOnce(
            &mut <D as DeltaDistributedState>::State,
        ) -> (<D as DeltaDistributedState>::StateDeltaChange, T)
        + Send,
>;

/// One applied (not yet committed) mutation.
struct Applied<D: DeltaDistributedState, T> {
    change: D::StateDeltaChange,
    delta: D::ViewDelta,
    /// Encoded delta, when it was needed for the size check (simple states).
    payload: Option<Vec<u8>>,
    tag: T,
}

/// A batch being saved: the state it will commit and the mutations it holds.
struct InFlight<D: DeltaDistributedState, T> {
    working: D::State,
    generation: Generation,
    applied: Vec<Applied<D, T>>,
}

/// The owner's shard and its pending mutations.
pub(super) struct Shard<D: DeltaDistributedState, T> {
    pub(super) state: D::State,
    pub(super) generation: Generation,
    pub(super) own_view: Arc<D::View>,
    persistent: bool,
    queue: VecDeque<Apply<D, T>>,
    in_flight: Option<InFlight<D, T>>,
    consecutive_save_failures: u32,
}

impl<D: DeltaDistributedState, T> Shard<D, T> {
    pub(super) fn new(start: Start<D::State>, own_view: Arc<D::View>) -> Self {
        Shard {
            state: start.state,
            generation: start.generation,
            own_view,
            persistent: start.persistent,
            queue: VecDeque::new(),
            in_flight: None,
            consecutive_save_failures: 0,
        }
    }

    pub(super) fn failing_saves(&self) -> bool {
        self.consecutive_save_failures > 0
    }
}

impl<D: DeltaDistributedState, T> Engine<D, T> {
    /// A local mutation. `apply` changes the state and returns the change and a tag; the
    /// tag comes back in [`EngineEvent::MutationDone`] once the mutation is committed (after
    /// its save, with persistence) or rolled back.
    pub fn handle_mutation<F>(&mut self, now: Instant, apply: F)
    where
        F: FnOnce(&mut D::State) -> (D::StateDeltaChange, T) + Send + 'static,
    {
        if self.shard.persistent {
            self.shard.queue.push_back(Box::new(apply));
            self.start_batch();
            return;
        }
        let limit = self.config.max_snapshot_bytes.get();
        match apply_one::<D, T, F>(&mut self.shard.state, apply, limit) {
            Ok(applied) => {
                let generation = self.shard.generation.next();
                self.commit_applied(now, generation, applied);
                self.finish_commit(now);
            }
            Err((tag, error)) => self.fail(tag, error),
        }
    }

    /// The outcome of the save asked for by the [`PersistRequest`] with `generation`.
    /// `Ok` commits and publishes the batch; `Err` rolls it back (state, age and own view
    /// are unchanged) and fails its mutations with [`MutationError::Persist`].
    pub fn handle_persisted(
        &mut self,
        now: Instant,
        generation: Generation,
        result: Result<(), PersistError>,
    ) {
        let Some(flight) = self.shard.in_flight.take_if(|f| f.generation == generation) else {
            tracing::warn!(state = D::name(), %generation, "persist result for no batch");
            return;
        };
        match result {
            Ok(()) => {
                self.shard.consecutive_save_failures = 0;
                self.shard.state = flight.working;
                let mut next = self.shard.generation;
                for applied in flight.applied {
                    next = next.next();
                    self.commit_applied(now, next, applied);
                }
                self.finish_commit(now);
            }
            Err(error) => {
                self.shard.consecutive_save_failures += 1;
                self.stats.save_failures += 1;
                self.record_error(format!("save failed: {error}"));
                for applied in flight.applied {
                    self.fail(applied.tag, MutationError::Persist(error.clone()));
                }
            }
        }
        self.start_batch();
    }

    /// Apply every queued mutation to a copy of the state and ask for one save.
    fn start_batch(&mut self) {
        if self.shard.in_flight.is_some() || self.shard.queue.is_empty() {
            return;
        }
        let limit = self.config.max_snapshot_bytes.get();
        let mut working = self.shard.state.clone();
        let mut generation = self.shard.generation;
        let mut applied = Vec::with_capacity(self.shard.queue.len());
        while let Some(apply) = self.shard.queue.pop_front() {
            match apply_one::<D, T, _>(&mut working, apply, limit) {
                Ok(one) => {
                    generation = generation.next();
                    applied.push(one);
                }
                Err((tag, error)) => self.fail(tag, error),
            }
        }
        if applied.is_empty() {
            return;
        }
        let shard = PersistedShard {
            incarnation: generation.incarnation,
            age: generation.age,
            storage_version: D::STORAGE_VERSION,
            state: D::serialize_state(&working),
        };
        self.persists
            .push_back(PersistRequest { generation, shard });
        self.shard.in_flight = Some(InFlight {
            working,
            generation,
            applied,
        });
    }

    /// Commit one applied mutation at `generation`: update the own view, send per strategy
    /// and urgency, acknowledge.
    fn commit_applied(&mut self, now: Instant, generation: Generation, applied: Applied<D, T>) {
        let old_view = self.shard.own_view.clone();
        let new_view = Arc::new(D::apply_delta(&old_view, &applied.delta));
        let urgency = D::sync_urgency(&old_view, &new_view, &applied.change);
        self.shard.own_view = new_view;
        self.shard.generation = generation;
        self.dispatch_change(now, generation, urgency, &applied.delta, applied.payload);
        self.stats.mutations_committed += 1;
        self.events.push_back(EngineEvent::MutationDone {
            tag: applied.tag,
            result: Ok(generation),
        });
    }

    /// Publish the own view after a run of commits.
    fn finish_commit(&mut self, now: Instant) {
        let own = crate::object::StateViewObject {
            source: self.local,
            generation: self.shard.generation,
            view: self.shard.own_view.clone(),
            synced_at: now,
            pending: None,
            status: crate::object::PeerStatus::Up,
        };
        self.set_view(own);
    }

    fn fail(&mut self, tag: T, error: MutationError) {
        self.events.push_back(EngineEvent::MutationDone {
            tag,
            result: Err(error),
        });
    }
}

/// Run one mutation on `state`. Simple states (whose delta is the whole state) are checked
/// against the snapshot limit here and restored if they exceed it.
fn apply_one<D, T, F>(
    state: &mut D::State,
    apply: F,
    limit: usize,
) -> Result<Applied<D, T>, (T, MutationError)>
where
    D: DeltaDistributedState,
    F: FnOnce(&mut D::State) -> (D::StateDeltaChange, T),
{
    let backup = D::DELTA_IS_SNAPSHOT.then(|| state.clone());
    let (change, tag) = apply(state);
    let delta = D::project_delta(&change);
    let Some(backup) = backup else {
        return Ok(Applied {
            change,
            delta,
            payload: None,
            tag,
        });
    };
    let payload = D::serialize_delta(&delta);
    if payload.len() > limit {
        *state = backup;
        return Err((
            tag,
            MutationError::TooLarge {
                bytes: payload.len(),
                limit,
            },
        ));
    }
    Ok(Applied {
        change,
        delta,
        payload: Some(payload),
        tag,
    })
}

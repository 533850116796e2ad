//! Loading a shard at registration: persistence, migration, incarnation rules.

use crate::engine::Start;
use crate::ids::{Age, Generation, Incarnation};
use crate::persist::{PersistedShard, StatePersistence};
use crate::runtime::Clock;
use crate::state::DeltaDistributedState;

/// The shard to start from. A loaded shard keeps its incarnation and age; otherwise a new
/// incarnation strictly greater than the persisted one (if any) starts at age 0. Every failure
/// falls back to `initial` under a new incarnation, logged, never a panic.
pub(crate) async fn load_start<D: DeltaDistributedState>(
    persistence: Option<&dyn StatePersistence>,
    clock: &dyn Clock,
    initial: D::State,
) -> Start<D::State> {
    let Some(persistence) = persistence else {
        return fresh(None, clock, initial, false);
    };
    let stored = match persistence.load(D::name()).await {
        Ok(stored) => stored,
        Err(error) => {
            tracing::error!(state = D::name(), %error, "loading the shard failed; starting empty");
            return fresh(None, clock, initial, true);
        }
    };
    let Some(stored) = stored else {
        return fresh(None, clock, initial, true);
    };
    match decode::<D>(&stored) {
        Ok(state) => {
            tracing::info!(
                state = D::name(),
                incarnation = stored.incarnation.0,
                age = stored.age.0,
                "shard loaded"
            );
            Start {
                state,
                generation: Generation::new(stored.incarnation, stored.age),
                persistent: true,
            }
        }
        Err(error) => {
            tracing::error!(state = D::name(), %error, "stored shard unreadable; starting empty");
            fresh(Some(stored.incarnation), clock, initial, true)
        }
    }
}

fn decode<D: DeltaDistributedState>(
    stored: &PersistedShard,
) -> Result<D::State, crate::state::DeserializeError> {
    use std::cmp::Ordering;
    match stored.storage_version.cmp(&D::STORAGE_VERSION) {
        Ordering::Equal => D::deserialize_state(&stored.state, stored.storage_version),
        Ordering::Less => D::migrate_state(&stored.state, stored.storage_version),
        Ordering::Greater => Err(crate::state::DeserializeError::UnsupportedVersion {
            version: stored.storage_version,
        }),
    }
}

fn fresh<S>(
    previous: Option<Incarnation>,
    clock: &dyn Clock,
    initial: S,
    persistent: bool,
) -> Start<S> {
    let incarnation = Incarnation::next_after(previous, clock.wall_millis());
    Start {
        state: initial,
        generation: Generation::new(incarnation, Age(0)),
        persistent,
    }
}

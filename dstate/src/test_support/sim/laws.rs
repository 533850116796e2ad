//! The algebra a delta-aware state must obey, checked on one run of changes.

use std::fmt::Debug;

use super::scenario::ApplyFn;
use crate::state::DeltaDistributedState;

/// A change after which a state's algebra did not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("after change {index}: {problem}")]
pub struct LawViolation {
    /// Index of the change in the run.
    pub index: usize,
    /// What did not hold.
    pub problem: String,
}

/// Check, for one run of `changes` from `initial`, that delta-apply equals snapshot-apply:
/// after each change, applying its delta (after a round trip through the delta codec) to the
/// previous view gives `project_view` of the new state; and every projected view survives a
/// round trip through the view codec.
///
/// Feed it generated change sequences (proptest) to check a state type's
/// `project_delta` / `apply_delta` / codecs before running it in a [`Sim`](super::Sim).
pub fn check_delta_law<D, C>(
    initial: &D::State,
    changes: &[C],
    apply: ApplyFn<D, C>,
) -> Result<(), LawViolation>
where
    D: DeltaDistributedState,
    D::View: PartialEq + Debug,
    C: Debug,
{
    let mut state = initial.clone();
    let mut view = D::project_view(&state);
    for (index, change) in changes.iter().enumerate() {
        let violation = |problem: String| LawViolation { index, problem };
        let state_change = apply(&mut state, change);
        let delta = D::project_delta(&state_change);
        let delta = D::deserialize_delta(&D::serialize_delta(&delta), D::WIRE_VERSION)
            .map_err(|e| violation(format!("the delta of {change:?} does not decode: {e}")))?;
        view = D::apply_delta(&view, &delta);
        let projected = D::project_view(&state);
        if view != projected {
            return Err(violation(format!(
                "{change:?}: delta-applied view {view:?} differs from the projection {projected:?}"
            )));
        }
        let decoded = D::deserialize_view(&D::serialize_view(&projected), D::WIRE_VERSION)
            .map_err(|e| violation(format!("the view does not decode: {e}")))?;
        if decoded != projected {
            return Err(violation(format!(
                "the view {projected:?} decodes as {decoded:?}"
            )));
        }
    }
    Ok(())
}

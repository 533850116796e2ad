//! dstate over ractor: an [`ActorRuntime`](dstate::ActorRuntime) on ractor actors, and
//! membership and transport over `ractor_cluster`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod runtime;

pub use runtime::{RactorRef, RactorRuntime, RactorTimer};

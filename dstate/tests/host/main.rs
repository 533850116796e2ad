//! The runtime-generic host on the in-process test runtime and network: several nodes in
//! one test, a shared virtual clock.

mod cluster;
mod hostile;
mod lifecycle;
mod persistence;
mod rules;
mod staleness;
mod strategies;

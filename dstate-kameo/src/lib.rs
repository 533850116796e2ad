//! dstate over kameo.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod runtime;

pub use runtime::{KameoRef, KameoRuntime, KameoTimer};

//! Replication scenarios across real OS processes, shared by every adapter.
//!
//! An adapter provides one child program that starts a node on its runtime and transport and
//! then calls [`serve_commands`]; its tests build a [`ProcessCluster`] with a function that
//! makes the child's `Command`, and run the scenarios of [`scenarios`]. The protocol between
//! parent and child is one text line per message:
//!
//! | parent → child | child → parent |
//! |---|---|
//! | (start) | `ready <node-id> <address>` |
//! | `mutate <seq> <simple\|delta> <value>` | `ok <seq> <age>` or `err <seq> <reason>` |
//! | `burst <seq> <simple\|delta> <count>` | `ok <seq> <final value>` |
//! | `read <seq> <simple\|delta>` | `views <seq> <node>:<value>:<up\|down>:<incarnation>:<age> ...` |
//! | `query <seq> <simple\|delta> <max staleness ms>` | `views <seq> <entries as read> \| <stale node ids>` |
//! | `diag <seq> <simple\|delta>` | `ok <seq> rejected=<n> backpressure=<n>` |
//! | `mem <seq>` | `ok <seq> <resident KiB>` |
//! | `leave <seq>` | `ok <seq> 0`, then the child exits |

mod child;
mod netns;
mod parent;
pub mod scenarios;

pub use child::serve_commands;
pub use netns::NetLab;
pub use parent::{NodeSpec, ProcessCluster, ProcessError, StateKind, ViewReport};

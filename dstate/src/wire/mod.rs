//! Frames between engines: versioned, checksummed, size-limited.
//!
//! Layout: `magic (1) | format (1) | postcard(header + payload) | crc32c (4, LE)`.
//! The checksum covers everything before it. Decoding any byte string returns `Ok` or
//! `Err` and never panics.

mod chunk;
mod frame;

pub(crate) use chunk::split_payload;
pub use chunk::{Reassembler, ReassemblyError};
pub use frame::Notice;
pub use frame::{decode, encode, Frame, FrameKind, FORMAT_VERSION, MAGIC, MIN_FRAME_BYTES};

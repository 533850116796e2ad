//! Splitting large snapshots into frames and putting them back together.

use std::collections::HashMap;

use crate::ids::{Generation, NodeId};

/// A chunked snapshot could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReassemblyError {
    /// The announced size exceeds the configured maximum.
    #[error("chunked snapshot of {total_bytes} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Announced size.
        total_bytes: u64,
        /// Configured maximum.
        limit: usize,
    },
    /// Chunk header fields disagree with each other or with earlier chunks.
    #[error("inconsistent chunk {index} of {count}")]
    Inconsistent {
        /// Index of the chunk.
        index: u32,
        /// Announced chunk count.
        count: u32,
    },
}

#[derive(Debug)]
struct Assembly {
    generation: Generation,
    count: u32,
    total_bytes: u64,
    parts: Vec<Option<Vec<u8>>>,
    received: u32,
    bytes: u64,
}

/// Reassembles chunked snapshots, one in flight per source (a newer generation replaces an
/// unfinished older one, so memory stays bounded by `max_bytes` per peer).
#[derive(Debug)]
pub struct Reassembler {
    max_bytes: usize,
    assemblies: HashMap<NodeId, Assembly>,
}

impl Reassembler {
    /// A reassembler accepting snapshots of at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Reassembler {
            max_bytes,
            assemblies: HashMap::new(),
        }
    }

    /// Add one chunk; returns the whole payload when the last piece arrives.
    pub fn handle_chunk(
        &mut self,
        source: NodeId,
        generation: Generation,
        index: u32,
        count: u32,
        total_bytes: u64,
        payload: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, ReassemblyError> {
        if total_bytes > self.max_bytes as u64 {
            self.assemblies.remove(&source);
            return Err(ReassemblyError::TooLarge {
                total_bytes,
                limit: self.max_bytes,
            });
        }
        if count == 0 || index >= count || u64::from(count) > total_bytes.max(1) {
            return Err(ReassemblyError::Inconsistent { index, count });
        }
        let restart = match self.assemblies.get(&source) {
            Some(a) => {
                a.generation != generation || a.count != count || a.total_bytes != total_bytes
            }
            None => true,
        };
        if restart {
            if let Some(old) = self.assemblies.get(&source) {
                if old.generation > generation {
                    // An older snapshot's chunk arriving late: ignore it.
                    return Ok(None);
                }
            }
            self.assemblies.insert(
                source,
                Assembly {
                    generation,
                    count,
                    total_bytes,
                    parts: vec![None; count as usize],
                    received: 0,
                    bytes: 0,
                },
            );
        }
        let Some(assembly) = self.assemblies.get_mut(&source) else {
            return Ok(None);
        };
        let Some(slot) = assembly.parts.get_mut(index as usize) else {
            return Err(ReassemblyError::Inconsistent { index, count });
        };
        if slot.is_none() {
            assembly.bytes += payload.len() as u64;
            if assembly.bytes > total_bytes {
                self.assemblies.remove(&source);
                return Err(ReassemblyError::Inconsistent { index, count });
            }
            *slot = Some(payload);
            assembly.received += 1;
        }
        if assembly.received < assembly.count {
            return Ok(None);
        }
        let Some(done) = self.assemblies.remove(&source) else {
            return Ok(None);
        };
        if done.bytes != done.total_bytes {
            return Err(ReassemblyError::Inconsistent { index, count });
        }
        let mut whole = Vec::with_capacity(done.total_bytes as usize);
        for part in done.parts.into_iter().flatten() {
            whole.extend_from_slice(&part);
        }
        Ok(Some(whole))
    }

    /// Forget any unfinished snapshot from `source`.
    pub fn forget(&mut self, source: NodeId) {
        self.assemblies.remove(&source);
    }
}

/// Split `payload` into pieces of at most `piece` bytes (at least one piece).
pub(crate) fn split_payload(payload: &[u8], piece: usize) -> Vec<&[u8]> {
    if payload.is_empty() {
        return vec![payload];
    }
    payload.chunks(piece.max(1)).collect()
}

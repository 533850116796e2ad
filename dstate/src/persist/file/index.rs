//! The in-memory index: where the latest record of every state is, and which files are open.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{segment_name, snapshot_name, RECORD_HEADER_LEN};
use super::fs::FsFile;

/// One file of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum FileId {
    /// The snapshot covering segments up to this number.
    Snapshot(u64),
    /// Log segment number.
    Segment(u64),
}

impl FileId {
    pub(crate) fn path(self, dir: &Path) -> PathBuf {
        dir.join(match self {
            FileId::Snapshot(covers) => snapshot_name(covers),
            FileId::Segment(number) => segment_name(number),
        })
    }
}

/// Where a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) file: FileId,
    /// Offset of the record header.
    pub(crate) offset: u64,
    pub(crate) payload_len: u32,
}

impl Location {
    pub(crate) fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

struct OpenFile {
    file: Arc<dyn FsFile>,
    len: u64,
}

/// Latest record per state, the open files they live in, and the sizes that decide when to
/// compact.
#[derive(Default)]
pub(crate) struct Index {
    entries: HashMap<String, Location>,
    files: BTreeMap<FileId, OpenFile>,
    live_bytes: u64,
    disk_bytes: u64,
}

impl Index {
    /// Point `name` at `location`, returning the previous location.
    pub(crate) fn insert(&mut self, name: String, location: Location) -> Option<Location> {
        self.live_bytes += location.record_len();
        let previous = self.entries.insert(name, location);
        if let Some(previous) = previous {
            self.live_bytes -= previous.record_len();
        }
        previous
    }

    /// Point `name` at `new` only if it still points at `old`.
    pub(crate) fn replace_if(&mut self, name: &str, old: Location, new: Location) {
        if let Some(current) = self.entries.get_mut(name) {
            if *current == old {
                *current = new;
                self.live_bytes = self.live_bytes - old.record_len() + new.record_len();
            }
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<Location> {
        self.entries.get(name).copied()
    }

    /// Every state and its location.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&String, &Location)> {
        self.entries.iter()
    }

    /// Track an open file of `len` bytes.
    pub(crate) fn add_file(&mut self, id: FileId, file: Arc<dyn FsFile>, len: u64) {
        self.disk_bytes += len;
        if let Some(old) = self.files.insert(id, OpenFile { file, len }) {
            self.disk_bytes -= old.len;
        }
    }

    /// Record that `id` is now `len` bytes long.
    pub(crate) fn set_file_len(&mut self, id: FileId, len: u64) {
        if let Some(open) = self.files.get_mut(&id) {
            self.disk_bytes = self.disk_bytes - open.len + len;
            open.len = len;
        }
    }

    pub(crate) fn file(&self, id: FileId) -> Option<Arc<dyn FsFile>> {
        self.files.get(&id).map(|open| Arc::clone(&open.file))
    }

    /// Stop tracking every file for which `obsolete` holds; returns their ids.
    pub(crate) fn drop_files(&mut self, obsolete: impl Fn(FileId) -> bool) -> Vec<FileId> {
        let ids: Vec<FileId> = self
            .files
            .keys()
            .copied()
            .filter(|id| obsolete(*id))
            .collect();
        for id in &ids {
            if let Some(open) = self.files.remove(id) {
                self.disk_bytes -= open.len;
            }
        }
        ids
    }

    /// True when some state's latest record is in `id`.
    pub(crate) fn references(&self, id: FileId) -> bool {
        self.entries.values().any(|location| location.file == id)
    }

    pub(crate) fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    pub(crate) fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// Bytes of the files that no state needs any more.
    pub(crate) fn garbage_bytes(&self) -> u64 {
        self.disk_bytes.saturating_sub(self.live_bytes)
    }
}

//! The log segment being appended to: durable appends, and repair after a failed one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{encode_file_header, FileKind, FILE_HEADER_LEN};
use super::fs::{Fs, FsFile};
use super::index::FileId;
use super::io_error;
use crate::error::PersistError;

/// The segment that commits append to.
///
/// Invariant: bytes `[0, end)` of the file are durable, whole batches; when `dirty` is false
/// the file holds nothing past `end`. A failed append may leave part of a batch past `end`;
/// the segment is then `dirty` and nothing more is appended until the file is truncated back
/// to `end` and that truncation is durable, so no later batch can follow a half-written one.
pub(crate) struct ActiveSegment {
    pub(crate) number: u64,
    pub(crate) file: Arc<dyn FsFile>,
    path: PathBuf,
    end: u64,
    dirty: bool,
}

impl ActiveSegment {
    /// An existing segment whose durable, whole batches end at `end`.
    pub(crate) fn resume(number: u64, file: Arc<dyn FsFile>, path: PathBuf, end: u64) -> Self {
        ActiveSegment {
            number,
            file,
            path,
            end,
            dirty: false,
        }
    }

    /// Create segment `number` in `dir` and make it and its directory entry durable.
    pub(crate) fn create(fs: &dyn Fs, dir: &Path, number: u64) -> Result<Self, PersistError> {
        let path = FileId::Segment(number).path(dir);
        let file = fs.create(&path).map_err(|err| io_error(err, &path))?;
        let header = encode_file_header(FileKind::Segment, number);
        let made_durable = file
            .write_all_at(0, &[&header])
            .and_then(|()| file.sync_data())
            .map_err(|err| io_error(err, &path))
            .and_then(|()| fs.sync_dir(dir).map_err(|err| io_error(err, dir)));
        if let Err(err) = made_durable {
            // Recovery would drop a short last segment anyway; removing it keeps the directory
            // tidy. A failure to remove is harmless: the next creation truncates it.
            if let Err(remove_err) = fs.remove(&path) {
                tracing::warn!(path = %path.display(), error = %remove_err, "could not remove a half-created segment");
            }
            return Err(err);
        }
        tracing::debug!(path = %path.display(), "created log segment");
        Ok(ActiveSegment::resume(number, file, path, FILE_HEADER_LEN))
    }

    /// Append `bufs` (`total` bytes, whole records ending with a commit record) and make them
    /// durable. Returns the offset they start at.
    ///
    /// On error nothing is acknowledged; the segment is truncated back to its last durable
    /// batch (or stays dirty if even that fails, and the next append retries the repair).
    pub(crate) fn append(&mut self, bufs: &[&[u8]], total: u64) -> Result<u64, PersistError> {
        if self.dirty {
            self.repair()?;
        }
        let start = self.end;
        let written = self
            .file
            .write_all_at(start, bufs)
            .and_then(|()| self.file.sync_data());
        if let Err(err) = written {
            let err = io_error(err, &self.path);
            self.dirty = true;
            if let Err(repair_err) = self.repair() {
                tracing::error!(
                    path = %self.path.display(),
                    error = %repair_err,
                    "could not truncate a failed batch; the log refuses appends until it can"
                );
            }
            return Err(err);
        }
        self.end = start + total;
        Ok(start)
    }

    /// Truncate the segment back to its last durable batch, durably.
    pub(crate) fn repair(&mut self) -> Result<(), PersistError> {
        if !self.dirty {
            return Ok(());
        }
        self.file
            .set_len(self.end)
            .and_then(|()| self.file.sync_data())
            .map_err(|err| io_error(err, &self.path))?;
        self.dirty = false;
        tracing::info!(path = %self.path.display(), end = self.end, "truncated a failed batch");
        Ok(())
    }

    /// Offset where the next batch goes (the end of the durable batches).
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    pub(crate) fn id(&self) -> FileId {
        FileId::Segment(self.number)
    }
}

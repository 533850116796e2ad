//! Compaction: copy the latest record of every state into a snapshot, then drop the log
//! segments and the snapshot it replaces.
//!
//! The writer first rolls the log to a new segment, so the files to compact no longer change.
//! A [`CompactionJob`] then runs on its own thread, while commits go on in the new segment:
//!
//! 1. write `snap-N.tmp` (header, verified copies of the records, end record), `fdatasync` it;
//! 2. rename it to `snap-N.snap` and `fsync` the directory;
//! 3. hand the new locations back to the writer, which repoints the index and removes the
//!    segments `<= N` and older snapshots.
//!
//! A crash at any step leaves either the old snapshot and segments (the temporary file is
//! removed on open) or the new snapshot (older files are ignored and removed on open).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::format::{
    decode_record_header, encode_file_header, encode_record_header, encode_snapshot_end,
    snapshot_name, snapshot_temp_name, FileKind, RecordHeader, RecordKind, RECORD_HEADER_LEN,
};
use super::fs::{Fs, FsFile};
use super::index::{FileId, Location};
use super::{corrupt, io_error};
use crate::error::PersistError;

/// Bytes copied per read while compacting, and the write buffer size.
const CHUNK: usize = 1 << 20;

/// One state to copy: its name, where its latest record is, and that file.
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) location: Location,
    pub(crate) file: Arc<dyn FsFile>,
}

/// Build the snapshot that covers segments up to `covers`.
pub(crate) struct CompactionJob {
    pub(crate) covers: u64,
    pub(crate) sources: Vec<Source>,
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) dir: PathBuf,
    pub(crate) abort: Arc<AtomicBool>,
}

/// A finished snapshot.
pub(crate) struct CompactionOutput {
    pub(crate) covers: u64,
    pub(crate) file: Arc<dyn FsFile>,
    pub(crate) len: u64,
    /// For every copied state: where its record was, and where it is now.
    pub(crate) moved: Vec<(String, Location, Location)>,
}

impl CompactionJob {
    /// Write, sync and rename the snapshot. On error the temporary file is removed.
    pub(crate) fn run(self) -> Result<CompactionOutput, PersistError> {
        let temp = self.dir.join(snapshot_temp_name(self.covers));
        let file = self.fs.create(&temp).map_err(|err| io_error(err, &temp))?;
        let result = self.write_snapshot(&file, &temp);
        if result.is_err() {
            if let Err(err) = self.fs.remove(&temp) {
                if err.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %temp.display(), error = %err, "could not remove an unfinished snapshot");
                }
            }
        }
        result
    }

    fn write_snapshot(
        &self,
        file: &Arc<dyn FsFile>,
        temp: &Path,
    ) -> Result<CompactionOutput, PersistError> {
        let mut out = BufferedWriter::new(&**file, temp);
        out.push(&encode_file_header(FileKind::Snapshot, self.covers))?;
        let mut moved = Vec::with_capacity(self.sources.len());
        for source in &self.sources {
            if self.abort.load(Ordering::Relaxed) {
                return Err(aborted());
            }
            let new = Location {
                file: FileId::Snapshot(self.covers),
                offset: out.position(),
                payload_len: source.location.payload_len,
            };
            let source_path = source.location.file.path(&self.dir);
            copy_record(
                &*source.file,
                &source_path,
                source.location,
                &mut out,
                &self.abort,
            )?;
            moved.push((source.name.clone(), source.location, new));
        }
        let end = encode_snapshot_end(moved.len() as u64);
        let header = RecordHeader {
            kind: RecordKind::SnapshotEnd,
            commit: true,
            payload_len: end.len() as u32,
            batch: 0,
            payload_crc: crc32c::crc32c(&end),
        };
        out.push(&encode_record_header(&header))?;
        out.push(&end)?;
        out.flush()?;
        let len = out.position();
        file.sync_data().map_err(|err| io_error(err, temp))?;
        let target = self.dir.join(snapshot_name(self.covers));
        self.fs
            .rename(temp, &target)
            .map_err(|err| io_error(err, &target))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|err| io_error(err, &self.dir))?;
        tracing::debug!(path = %target.display(), states = moved.len(), bytes = len, "wrote snapshot");
        Ok(CompactionOutput {
            covers: self.covers,
            file: Arc::clone(file),
            len,
            moved,
        })
    }
}

/// Copy the shard record at `location` of `source` to `out`, verifying both checksums.
fn copy_record(
    source: &dyn FsFile,
    path: &Path,
    location: Location,
    out: &mut BufferedWriter<'_>,
    abort: &AtomicBool,
) -> Result<(), PersistError> {
    let mut head = [0u8; RECORD_HEADER_LEN];
    source
        .read_exact_at(location.offset, &mut head)
        .map_err(|err| io_error(err, path))?;
    let header = decode_record_header(&head).map_err(|r| corrupt(path, location.offset, r))?;
    if header.kind != RecordKind::Shard || header.payload_len != location.payload_len {
        return Err(corrupt(
            path,
            location.offset,
            "record is not the indexed shard record",
        ));
    }
    out.push(&head)?;
    let mut chunk = vec![0u8; CHUNK.min(header.payload_len as usize)];
    let mut crc = 0;
    let mut done = 0u64;
    let payload_at = location.offset + RECORD_HEADER_LEN as u64;
    while done < u64::from(header.payload_len) {
        if abort.load(Ordering::Relaxed) {
            return Err(aborted());
        }
        let step = (u64::from(header.payload_len) - done).min(CHUNK as u64) as usize;
        let piece = &mut chunk[..step];
        source
            .read_exact_at(payload_at + done, piece)
            .map_err(|err| io_error(err, path))?;
        crc = crc32c::crc32c_append(crc, piece);
        out.push(piece)?;
        done += step as u64;
    }
    if crc != header.payload_crc {
        return Err(corrupt(path, location.offset, "payload checksum mismatch"));
    }
    Ok(())
}

fn aborted() -> PersistError {
    PersistError::Io {
        kind: format!("{:?}", std::io::ErrorKind::Interrupted),
        message: "compaction stopped: the store is closing".to_owned(),
    }
}

/// Appends to a new file through a buffer, so that many small records cost few writes.
struct BufferedWriter<'f> {
    file: &'f dyn FsFile,
    path: &'f Path,
    written: u64,
    buf: Vec<u8>,
}

impl<'f> BufferedWriter<'f> {
    fn new(file: &'f dyn FsFile, path: &'f Path) -> Self {
        BufferedWriter {
            file,
            path,
            written: 0,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    /// Offset the next pushed byte lands at.
    fn position(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), PersistError> {
        if self.buf.len() + bytes.len() > CHUNK {
            self.flush()?;
        }
        if bytes.len() >= CHUNK {
            self.write(&[bytes])
        } else {
            self.buf.extend_from_slice(bytes);
            Ok(())
        }
    }

    fn flush(&mut self) -> Result<(), PersistError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        self.write(&[&buf])?;
        self.buf = buf;
        self.buf.clear();
        Ok(())
    }

    fn write(&mut self, bufs: &[&[u8]]) -> Result<(), PersistError> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        self.file
            .write_all_at(self.written, bufs)
            .map_err(|err| io_error(err, self.path))?;
        self.written += len as u64;
        Ok(())
    }
}

//! Opening a store: read the newest snapshot, replay the log segments after it, cut a torn
//! tail, and refuse damage anywhere else.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use super::format::{
    decode_file_header, decode_snapshot_end, parse_entry_name, EntryName, FileKind, HeaderError,
    RecordKind, FILE_HEADER_LEN, FORMAT_VERSION,
};
use super::fs::{Fs, FsFile};
use super::index::{FileId, Index, Location};
use super::reader::{ScanReader, Scanned};
use super::segment::ActiveSegment;
use super::{corrupt, io_error};
use crate::error::PersistError;

/// What opening a store found.
pub(crate) struct Recovered {
    pub(crate) index: Index,
    pub(crate) active: ActiveSegment,
    /// Number of the next batch: above every batch in the log.
    pub(crate) next_batch: u64,
}

/// Recover the store in `dir` (which must exist and be locked by the caller).
pub(crate) fn recover(fs: &dyn Fs, dir: &Path) -> Result<Recovered, PersistError> {
    let mut segments = BTreeSet::new();
    let mut snapshots = BTreeSet::new();
    for name in fs.list(dir).map_err(|err| io_error(err, dir))? {
        match parse_entry_name(&name) {
            EntryName::Segment(n) => {
                segments.insert(n);
            }
            EntryName::Snapshot(n) => {
                snapshots.insert(n);
            }
            // An unfinished snapshot of a compaction that did not complete.
            EntryName::Temporary => {
                remove_quietly(fs, &dir.join(name));
            }
            EntryName::Other => {}
        }
    }

    let mut index = Index::default();
    let base = snapshots.last().copied();
    if let Some(covers) = base {
        load_snapshot(fs, dir, covers, &mut index)?;
    }
    // Files a finished compaction had not removed yet.
    let mut removed = false;
    for &covers in snapshots.iter().filter(|&&k| Some(k) != base) {
        removed |= remove_quietly(fs, &FileId::Snapshot(covers).path(dir));
    }
    let first = base.map_or(1, |covers| covers + 1);
    for &n in segments.iter().filter(|&&n| n < first) {
        removed |= remove_quietly(fs, &FileId::Segment(n).path(dir));
    }
    let live: Vec<u64> = segments.iter().copied().filter(|&n| n >= first).collect();
    check_sequence(dir, first, &live)?;
    if base.is_some() && live.is_empty() {
        // The segment after a snapshot is created, synced and in the directory before the
        // snapshot is written: without it, whatever was saved after the snapshot is gone.
        let reason = format!("log segment {first} after the snapshot is missing");
        return Err(corrupt(dir, 0, &reason));
    }

    let mut last_committed = 0u64;
    let mut active = None;
    for (i, &number) in live.iter().enumerate() {
        let is_last = i + 1 == live.len();
        let path = FileId::Segment(number).path(dir);
        let file = fs.open(&path).map_err(|err| io_error(err, &path))?;
        let len = file.len().map_err(|err| io_error(err, &path))?;
        if !check_segment_header(&*file, &path, number, len, is_last)? {
            // A segment whose creation was cut short: it never held a record.
            tracing::warn!(path = %path.display(), "removing a half-created log segment");
            removed |= remove_quietly(fs, &path);
            continue;
        }
        let end = scan_segment(
            &*file,
            &path,
            number,
            len,
            is_last,
            &mut index,
            &mut last_committed,
        )?;
        if end < len {
            tracing::warn!(
                path = %path.display(),
                kept = end,
                dropped = len - end,
                "truncating a torn tail of the log"
            );
            file.set_len(end)
                .and_then(|()| file.sync_data())
                .map_err(|err| io_error(err, &path))?;
        }
        index.add_file(FileId::Segment(number), Arc::clone(&file), end);
        active = Some(ActiveSegment::resume(number, file, path, end));
    }
    if removed {
        fs.sync_dir(dir).map_err(|err| io_error(err, dir))?;
    }
    let active = match active {
        Some(active) => active,
        None => {
            let number = live.last().copied().unwrap_or(first);
            let created = ActiveSegment::create(fs, dir, number)?;
            index.add_file(created.id(), Arc::clone(&created.file), created.end());
            created
        }
    };
    Ok(Recovered {
        index,
        active,
        next_batch: last_committed.saturating_add(1),
    })
}

/// Segments after the snapshot must be numbered `first, first + 1, ...` without gaps.
fn check_sequence(dir: &Path, first: u64, live: &[u64]) -> Result<(), PersistError> {
    for (expected, &n) in (first..).zip(live) {
        if n != expected {
            let reason = if expected == first && first == 1 {
                format!("log segment {n} without the snapshot that must precede it")
            } else {
                format!("log segment {expected} is missing")
            };
            return Err(corrupt(dir, 0, &reason));
        }
    }
    Ok(())
}

/// Verify a segment's header. `Ok(false)` for a last segment cut short while being created.
fn check_segment_header(
    file: &dyn FsFile,
    path: &Path,
    number: u64,
    len: u64,
    is_last: bool,
) -> Result<bool, PersistError> {
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    let readable = (len as usize).min(header.len());
    file.read_exact_at(0, &mut header[..readable])
        .map_err(|err| io_error(err, path))?;
    match decode_file_header(FileKind::Segment, &header[..readable]) {
        Ok(seq) if seq == number => Ok(true),
        Ok(seq) => Err(corrupt(
            path,
            0,
            &format!("segment header says {seq}, file name says {number}"),
        )),
        Err(HeaderError::FutureVersion(found)) => Err(PersistError::FutureVersion {
            found,
            supported: FORMAT_VERSION,
        }),
        // Creation writes the header and syncs it before any record is appended, so a last
        // segment no longer than a header with a bad header never held data.
        Err(HeaderError::Corrupt(_)) if is_last && len <= FILE_HEADER_LEN => Ok(false),
        Err(HeaderError::Corrupt(reason)) => Err(corrupt(path, 0, reason)),
    }
}

/// Replay one segment into `index`. Returns the end of its last whole, committed batch.
///
/// Damage in a segment other than the last, or damage in the last one followed by a valid
/// record of a later batch than the one being written at the crash, is `Corrupt`. Damage in
/// the last segment that nothing valid follows is a torn tail: the uncommitted batch is dropped.
fn scan_segment(
    file: &dyn FsFile,
    path: &Path,
    number: u64,
    len: u64,
    is_last: bool,
    index: &mut Index,
    last_committed: &mut u64,
) -> Result<u64, PersistError> {
    let mut reader = ScanReader::new(file, len);
    let mut pos = FILE_HEADER_LEN;
    let mut good_end = FILE_HEADER_LEN;
    let mut pending: Vec<(String, Location)> = Vec::new();
    let mut pending_batch = None;
    while pos < reader.len() {
        let record = match reader.record(pos).map_err(|err| io_error(err, path))? {
            Scanned::Record(record) => record,
            Scanned::Malformed { reason } => return Err(corrupt(path, pos, &reason)),
            Scanned::Bad { reason } => {
                if !is_last {
                    return Err(corrupt(path, pos, &reason));
                }
                // Only the batch after the last committed one can have been in flight.
                let later = last_committed.saturating_add(2);
                if reader
                    .valid_header_after(pos + 1, later)
                    .map_err(|err| io_error(err, path))?
                {
                    let reason = format!("{reason}; records of later batches follow");
                    return Err(corrupt(path, pos, &reason));
                }
                tracing::warn!(path = %path.display(), offset = pos, %reason, "torn record at the end of the log");
                break;
            }
        };
        let header = record.header;
        let (RecordKind::Shard, Some(name)) = (header.kind, record.name) else {
            return Err(corrupt(path, pos, "snapshot record inside a log segment"));
        };
        if header.batch <= *last_committed {
            let reason = format!("batch {} follows batch {}", header.batch, last_committed);
            return Err(corrupt(path, pos, &reason));
        }
        if pending_batch.is_some_and(|b| b != header.batch) {
            return Err(corrupt(path, pos, "a batch ends without its commit record"));
        }
        pending_batch = Some(header.batch);
        let location = Location {
            file: FileId::Segment(number),
            offset: pos,
            payload_len: header.payload_len,
        };
        pending.push((name, location));
        pos += header.record_len();
        if header.commit {
            for (name, location) in pending.drain(..) {
                index.insert(name, location);
            }
            *last_committed = header.batch;
            pending_batch = None;
            good_end = pos;
        }
    }
    if !pending.is_empty() && !is_last {
        return Err(corrupt(path, good_end, "segment ends inside a batch"));
    }
    Ok(good_end)
}

/// Read snapshot `covers` into `index`; any damage is `Corrupt` (snapshots are made durable
/// before they are renamed into place, so they cannot be torn).
fn load_snapshot(
    fs: &dyn Fs,
    dir: &Path,
    covers: u64,
    index: &mut Index,
) -> Result<(), PersistError> {
    let id = FileId::Snapshot(covers);
    let path = id.path(dir);
    let file = fs.open(&path).map_err(|err| io_error(err, &path))?;
    let len = file.len().map_err(|err| io_error(err, &path))?;
    let mut reader = ScanReader::new(&*file, len);
    let header = reader
        .bytes(0, FILE_HEADER_LEN as usize)
        .map_err(|err| io_error(err, &path))?
        .ok_or_else(|| corrupt(&path, 0, "file shorter than its header"))?;
    match decode_file_header(FileKind::Snapshot, header) {
        Ok(seq) if seq == covers => {}
        Ok(seq) => {
            let reason = format!("snapshot header says {seq}, file name says {covers}");
            return Err(corrupt(&path, 0, &reason));
        }
        Err(HeaderError::FutureVersion(found)) => {
            return Err(PersistError::FutureVersion {
                found,
                supported: FORMAT_VERSION,
            })
        }
        Err(HeaderError::Corrupt(reason)) => return Err(corrupt(&path, 0, reason)),
    }
    let mut pos = FILE_HEADER_LEN;
    let mut count = 0u64;
    loop {
        let record = match reader.record(pos).map_err(|err| io_error(err, &path))? {
            Scanned::Record(record) => record,
            Scanned::Bad { reason } | Scanned::Malformed { reason } => {
                return Err(corrupt(&path, pos, &reason))
            }
        };
        let header = record.header;
        match (header.kind, record.name, record.end_payload) {
            (RecordKind::Shard, Some(name), _) => {
                let location = Location {
                    file: id,
                    offset: pos,
                    payload_len: header.payload_len,
                };
                if index.insert(name, location).is_some() {
                    return Err(corrupt(&path, pos, "state appears twice in the snapshot"));
                }
                count += 1;
                pos += header.record_len();
            }
            (RecordKind::SnapshotEnd, _, Some(payload)) => {
                let expected = decode_snapshot_end(&payload).map_err(|r| corrupt(&path, pos, r))?;
                if expected != count {
                    let reason = format!("snapshot ends after {count} of {expected} states");
                    return Err(corrupt(&path, pos, &reason));
                }
                if pos + header.record_len() != len {
                    return Err(corrupt(&path, pos, "bytes after the snapshot end record"));
                }
                break;
            }
            _ => return Err(corrupt(&path, pos, "unexpected record in a snapshot")),
        }
    }
    index.add_file(id, file, len);
    Ok(())
}

/// Remove a file nothing needs; a failure only costs disk space until the next try.
fn remove_quietly(fs: &dyn Fs, path: &Path) -> bool {
    match fs.remove(path) {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "could not remove an obsolete file");
            false
        }
    }
}

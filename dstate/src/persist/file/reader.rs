//! Reading records back: a buffered sequential scanner for recovery, and verified random
//! reads of one shard for `load` and compaction.

use std::io;
use std::path::Path;

use super::format::{
    decode_name, decode_record_header, decode_shard_fixed, RecordHeader, RecordKind,
    RECORD_HEADER_LEN, RECORD_MAGIC, SHARD_FIXED_LEN,
};
use super::fs::FsFile;
use super::index::Location;
use super::{corrupt, io_error};
use crate::error::PersistError;
use crate::persist::PersistedShard;

/// Bytes read at once while scanning.
const WINDOW: usize = 1 << 20;

/// Sequential reads through a window, so that scanning many small records costs few calls.
pub(crate) struct ScanReader<'f> {
    file: &'f dyn FsFile,
    len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

/// A record met by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scanned {
    /// A whole, verified record.
    Record(ScannedRecord),
    /// Not a whole valid record: a torn write, or damage. `reason` says which check failed.
    Bad { reason: String },
    /// Checksums match but the content does not parse: never a torn write.
    Malformed { reason: String },
}

/// A verified record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScannedRecord {
    pub(crate) header: RecordHeader,
    /// The state name, for shard records.
    pub(crate) name: Option<String>,
    /// The whole payload, for (small) snapshot end records.
    pub(crate) end_payload: Option<Vec<u8>>,
}

impl<'f> ScanReader<'f> {
    pub(crate) fn new(file: &'f dyn FsFile, len: u64) -> Self {
        ScanReader {
            file,
            len,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Bytes `[offset, offset + n)` with `n <= WINDOW`, or `None` past the end of the file.
    pub(crate) fn bytes(&mut self, offset: u64, n: usize) -> io::Result<Option<&[u8]>> {
        let Some(end) = offset.checked_add(n as u64) else {
            return Ok(None);
        };
        if end > self.len {
            return Ok(None);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if offset < self.buf_start || end > buf_end {
            let want = (self.len - offset).min(WINDOW.max(n) as u64) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(offset, &mut self.buf)?;
            self.buf_start = offset;
        }
        let at = (offset - self.buf_start) as usize;
        Ok(Some(&self.buf[at..at + n]))
    }

    /// CRC32C of `[offset, offset + len)`, which must lie inside the file.
    fn crc(&mut self, offset: u64, len: u64) -> io::Result<u32> {
        let mut crc = 0;
        let mut done = 0u64;
        while done < len {
            let step = (len - done).min(WINDOW as u64) as usize;
            let Some(chunk) = self.bytes(offset + done, step)? else {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            };
            crc = crc32c::crc32c_append(crc, chunk);
            done += step as u64;
        }
        Ok(crc)
    }

    /// Read and verify the record at `offset`.
    pub(crate) fn record(&mut self, offset: u64) -> io::Result<Scanned> {
        let header = match self.bytes(offset, RECORD_HEADER_LEN)? {
            None => return Ok(bad("record header cut short")),
            Some(bytes) => match decode_record_header(bytes) {
                Ok(header) => header,
                Err(reason) => return Ok(bad(reason)),
            },
        };
        if offset.saturating_add(header.record_len()) > self.len {
            return Ok(bad("record runs past the end of the file"));
        }
        let payload_at = offset + RECORD_HEADER_LEN as u64;
        let payload_len = u64::from(header.payload_len);
        if self.crc(payload_at, payload_len)? != header.payload_crc {
            return Ok(bad("payload checksum mismatch"));
        }
        match header.kind {
            RecordKind::Shard => {
                let head_len = (header.payload_len as usize).min(SHARD_FIXED_LEN);
                let Some(head) = self.bytes(payload_at, head_len)? else {
                    return Ok(bad("record runs past the end of the file"));
                };
                let fixed = match decode_shard_fixed(head, header.payload_len) {
                    Ok(fixed) => fixed,
                    Err(reason) => return Ok(Scanned::Malformed { reason }),
                };
                let name_at = payload_at + SHARD_FIXED_LEN as u64;
                let Some(name_bytes) = self.bytes(name_at, fixed.name_len)? else {
                    return Ok(bad("record runs past the end of the file"));
                };
                match decode_name(name_bytes) {
                    Ok(name) => Ok(Scanned::Record(ScannedRecord {
                        header,
                        name: Some(name),
                        end_payload: None,
                    })),
                    Err(reason) => Ok(Scanned::Malformed { reason }),
                }
            }
            RecordKind::SnapshotEnd => {
                let len = (header.payload_len as usize).min(64);
                let Some(payload) = self.bytes(payload_at, len)? else {
                    return Ok(bad("record runs past the end of the file"));
                };
                Ok(Scanned::Record(ScannedRecord {
                    header,
                    name: None,
                    end_payload: Some(payload.to_vec()),
                }))
            }
        }
    }

    /// True if a record header that verifies, of a batch numbered at least `min_batch`,
    /// starts anywhere in `[from, len)`. Used to tell a torn tail (nothing valid follows the
    /// damage) from damage in the middle of acknowledged data.
    pub(crate) fn valid_header_after(&mut self, from: u64, min_batch: u64) -> io::Result<bool> {
        let mut at = from;
        while at.saturating_add(RECORD_HEADER_LEN as u64) <= self.len {
            let n = (self.len - at).min(WINDOW as u64) as usize;
            let Some(window) = self.bytes(at, n)? else {
                break;
            };
            // Every header start in this window; one straddling its end is seen in the next.
            let starts = window.len() + 1 - RECORD_HEADER_LEN;
            let mut i = 0;
            while i < starts {
                let Some(skip) = window[i..starts].iter().position(|&b| b == RECORD_MAGIC[0])
                else {
                    break;
                };
                i += skip;
                if let Ok(header) = decode_record_header(&window[i..i + RECORD_HEADER_LEN]) {
                    if header.batch >= min_batch {
                        return Ok(true);
                    }
                }
                i += 1;
            }
            at += starts as u64;
        }
        Ok(false)
    }
}

fn bad(reason: &str) -> Scanned {
    Scanned::Bad {
        reason: reason.to_owned(),
    }
}

/// Read and verify the shard record at `location` of `file` (whose path is `path`).
pub(crate) fn read_shard(
    file: &dyn FsFile,
    path: &Path,
    location: Location,
) -> Result<PersistedShard, PersistError> {
    let bad = |reason: &str| corrupt(path, location.offset, reason);
    let mut head = [0u8; RECORD_HEADER_LEN];
    file.read_exact_at(location.offset, &mut head)
        .map_err(|err| read_error(err, path, location.offset))?;
    let header = decode_record_header(&head).map_err(bad)?;
    if header.kind != RecordKind::Shard || header.payload_len != location.payload_len {
        return Err(bad("record is not the indexed shard record"));
    }
    let payload_at = location.offset + RECORD_HEADER_LEN as u64;
    let mut fixed_bytes = [0u8; SHARD_FIXED_LEN];
    if (header.payload_len as usize) < SHARD_FIXED_LEN {
        return Err(bad("shard payload shorter than its fixed fields"));
    }
    file.read_exact_at(payload_at, &mut fixed_bytes)
        .map_err(|err| read_error(err, path, location.offset))?;
    let fixed = decode_shard_fixed(&fixed_bytes, header.payload_len).map_err(|r| bad(&r))?;
    let mut name = vec![0u8; fixed.name_len];
    let name_at = payload_at + SHARD_FIXED_LEN as u64;
    file.read_exact_at(name_at, &mut name)
        .map_err(|err| read_error(err, path, location.offset))?;
    let state_len = header.payload_len as usize - SHARD_FIXED_LEN - fixed.name_len;
    let mut state = vec![0u8; state_len];
    file.read_exact_at(name_at + fixed.name_len as u64, &mut state)
        .map_err(|err| read_error(err, path, location.offset))?;
    let crc = crc32c::crc32c_append(
        crc32c::crc32c_append(crc32c::crc32c(&fixed_bytes), &name),
        &state,
    );
    if crc != header.payload_crc {
        return Err(bad("payload checksum mismatch"));
    }
    Ok(PersistedShard {
        incarnation: fixed.incarnation,
        age: fixed.age,
        storage_version: fixed.storage_version,
        state,
    })
}

/// A read that ran past the end of the file means the file is shorter than the index says.
fn read_error(err: io::Error, path: &Path, offset: u64) -> PersistError {
    if err.kind() == io::ErrorKind::UnexpectedEof {
        corrupt(path, offset, "record runs past the end of the file")
    } else {
        io_error(err, path)
    }
}

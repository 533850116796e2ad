//! Byte layout of the store's files: file headers, record headers and shard payloads.
//!
//! Everything is little-endian. See the module documentation of `persist::file` for the
//! picture; this file is the single place that knows the offsets.

use crate::error::PersistError;
use crate::ids::{Age, Incarnation};
use crate::persist::PersistedShard;

/// Format version written by this build and the newest one it reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Length of the header at the start of every log segment and snapshot.
pub(crate) const FILE_HEADER_LEN: u64 = 32;
/// Length of the header in front of every record payload.
pub(crate) const RECORD_HEADER_LEN: usize = 32;
/// Length of the fixed part of a shard payload (before the name).
pub(crate) const SHARD_FIXED_LEN: usize = 22;
/// Magic number at the start of every record header (`"DSr1"`).
pub(crate) const RECORD_MAGIC: [u8; 4] = *b"DSr1";

const SEGMENT_MAGIC: [u8; 8] = *b"DSTATEWL";
const SNAPSHOT_MAGIC: [u8; 8] = *b"DSTATESN";
const FLAG_COMMIT: u8 = 1;

/// The two kinds of files of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A write-ahead log segment: batches of shard records.
    Segment,
    /// A snapshot: the latest record of every state as of the end of a segment.
    Snapshot,
}

/// The kinds of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// The full encoded state of one state type.
    Shard,
    /// The last record of a snapshot: the number of shard records before it.
    SnapshotEnd,
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    /// What the payload holds.
    pub(crate) kind: RecordKind,
    /// Set on the last record of a batch: the batch is complete.
    pub(crate) commit: bool,
    /// Payload length in bytes.
    pub(crate) payload_len: u32,
    /// Batch number (one per group commit, increasing through the log).
    pub(crate) batch: u64,
    /// CRC32C of the payload.
    pub(crate) payload_crc: u32,
}

impl RecordHeader {
    /// Header plus payload length.
    pub(crate) fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

/// Why a file header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Not one of our files, or damaged beyond recognition.
    Corrupt(&'static str),
    /// Written by a newer format.
    FutureVersion(u32),
}

/// Encode the header of a segment or snapshot file with its sequence number.
pub(crate) fn encode_file_header(kind: FileKind, sequence: u64) -> [u8; FILE_HEADER_LEN as usize] {
    let mut out = [0u8; FILE_HEADER_LEN as usize];
    out[0..8].copy_from_slice(match kind {
        FileKind::Segment => &SEGMENT_MAGIC,
        FileKind::Snapshot => &SNAPSHOT_MAGIC,
    });
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[16..24].copy_from_slice(&sequence.to_le_bytes());
    let crc = crc32c::crc32c(&out[0..24]);
    out[24..28].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decode a file header, returning its sequence number.
///
/// A header whose checksum fails but whose version field is newer than ours is reported as a
/// future version: a newer format may lay out the rest differently.
pub(crate) fn decode_file_header(kind: FileKind, bytes: &[u8]) -> Result<u64, HeaderError> {
    if bytes.len() < FILE_HEADER_LEN as usize {
        return Err(HeaderError::Corrupt("file shorter than its header"));
    }
    let magic = match kind {
        FileKind::Segment => &SEGMENT_MAGIC,
        FileKind::Snapshot => &SNAPSHOT_MAGIC,
    };
    if &bytes[0..8] != magic {
        return Err(HeaderError::Corrupt("bad file magic"));
    }
    let version = read_u32(bytes, 8);
    let crc_ok = crc32c::crc32c(&bytes[0..24]) == read_u32(bytes, 24);
    if version > FORMAT_VERSION {
        return Err(HeaderError::FutureVersion(version));
    }
    if !crc_ok {
        return Err(HeaderError::Corrupt("file header checksum mismatch"));
    }
    if version == 0 || read_u32(bytes, 12) != 0 || read_u32(bytes, 28) != 0 {
        return Err(HeaderError::Corrupt("bad file header fields"));
    }
    Ok(read_u64(bytes, 16))
}

/// Encode a record header.
pub(crate) fn encode_record_header(header: &RecordHeader) -> [u8; RECORD_HEADER_LEN] {
    let mut out = [0u8; RECORD_HEADER_LEN];
    out[0..4].copy_from_slice(&RECORD_MAGIC);
    out[8..12].copy_from_slice(&header.payload_len.to_le_bytes());
    out[12] = match header.kind {
        RecordKind::Shard => 1,
        RecordKind::SnapshotEnd => 2,
    };
    out[13] = if header.commit { FLAG_COMMIT } else { 0 };
    out[16..24].copy_from_slice(&header.batch.to_le_bytes());
    out[24..28].copy_from_slice(&header.payload_crc.to_le_bytes());
    let crc = crc32c::crc32c(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decode and verify a record header. The error is a human-readable reason.
pub(crate) fn decode_record_header(bytes: &[u8]) -> Result<RecordHeader, &'static str> {
    if bytes.len() < RECORD_HEADER_LEN {
        return Err("record header cut short");
    }
    if bytes[0..4] != RECORD_MAGIC {
        return Err("bad record magic");
    }
    if crc32c::crc32c(&bytes[8..RECORD_HEADER_LEN]) != read_u32(bytes, 4) {
        return Err("record header checksum mismatch");
    }
    let kind = match bytes[12] {
        1 => RecordKind::Shard,
        2 => RecordKind::SnapshotEnd,
        _ => return Err("unknown record kind"),
    };
    let flags = bytes[13];
    if flags & !FLAG_COMMIT != 0 || bytes[14] != 0 || bytes[15] != 0 || read_u32(bytes, 28) != 0 {
        return Err("unknown record flags");
    }
    Ok(RecordHeader {
        kind,
        commit: flags & FLAG_COMMIT != 0,
        payload_len: read_u32(bytes, 8),
        batch: read_u64(bytes, 16),
        payload_crc: read_u32(bytes, 24),
    })
}

/// Encode the payload of a shard record: fixed fields, name, state bytes.
pub(crate) fn encode_shard_payload(
    name: &str,
    shard: &PersistedShard,
) -> Result<Vec<u8>, PersistError> {
    let name_len = u16::try_from(name.len()).map_err(|_| {
        invalid_input(format!(
            "state name of {} bytes exceeds {} bytes",
            name.len(),
            u16::MAX
        ))
    })?;
    let total = SHARD_FIXED_LEN + name.len() + shard.state.len();
    if u32::try_from(total).is_err() {
        return Err(invalid_input(format!(
            "state {name} of {} bytes exceeds the record limit of {} bytes",
            shard.state.len(),
            u32::MAX as usize - SHARD_FIXED_LEN - name.len()
        )));
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&shard.incarnation.0.to_le_bytes());
    out.extend_from_slice(&shard.age.0.to_le_bytes());
    out.extend_from_slice(&shard.storage_version.to_le_bytes());
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&shard.state);
    Ok(out)
}

/// The fixed fields of a shard payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShardFixed {
    pub(crate) incarnation: Incarnation,
    pub(crate) age: Age,
    pub(crate) storage_version: u32,
    pub(crate) name_len: usize,
}

/// Decode the fixed fields at the start of a shard payload of `payload_len` bytes.
pub(crate) fn decode_shard_fixed(bytes: &[u8], payload_len: u32) -> Result<ShardFixed, String> {
    if bytes.len() < SHARD_FIXED_LEN || (payload_len as usize) < SHARD_FIXED_LEN {
        return Err("shard payload shorter than its fixed fields".to_owned());
    }
    let name_len = usize::from(u16::from_le_bytes([bytes[20], bytes[21]]));
    if SHARD_FIXED_LEN + name_len > payload_len as usize {
        return Err(format!(
            "state name of {name_len} bytes overruns its record"
        ));
    }
    Ok(ShardFixed {
        incarnation: Incarnation(read_u64(bytes, 0)),
        age: Age(read_u64(bytes, 8)),
        storage_version: read_u32(bytes, 16),
        name_len,
    })
}

/// Decode a state name.
pub(crate) fn decode_name(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "state name is not UTF-8".to_owned())
}

/// Encode the payload of the end record of a snapshot.
pub(crate) fn encode_snapshot_end(records: u64) -> [u8; 8] {
    records.to_le_bytes()
}

/// Decode the payload of the end record of a snapshot: the number of shard records.
pub(crate) fn decode_snapshot_end(bytes: &[u8]) -> Result<u64, &'static str> {
    if bytes.len() != 8 {
        return Err("snapshot end record has the wrong length");
    }
    Ok(read_u64(bytes, 0))
}

/// File name of segment `number`.
pub(crate) fn segment_name(number: u64) -> String {
    format!("wal-{number:016x}.log")
}

/// File name of the snapshot that covers segments up to `covers`.
pub(crate) fn snapshot_name(covers: u64) -> String {
    format!("snap-{covers:016x}.snap")
}

/// Temporary name a snapshot is written under before it is renamed into place.
pub(crate) fn snapshot_temp_name(covers: u64) -> String {
    format!("snap-{covers:016x}.tmp")
}

/// What a directory entry is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryName {
    Segment(u64),
    Snapshot(u64),
    Temporary,
    Other,
}

/// Classify a directory entry by its name.
pub(crate) fn parse_entry_name(name: &str) -> EntryName {
    let number = |hex: &str| {
        if hex.len() == 16 {
            u64::from_str_radix(hex, 16).ok()
        } else {
            None
        }
    };
    if let Some(n) = name
        .strip_prefix("wal-")
        .and_then(|rest| rest.strip_suffix(".log"))
        .and_then(number)
    {
        return EntryName::Segment(n);
    }
    if let Some(n) = name
        .strip_prefix("snap-")
        .and_then(|rest| rest.strip_suffix(".snap"))
        .and_then(number)
    {
        return EntryName::Snapshot(n);
    }
    if name.starts_with("snap-") && name.ends_with(".tmp") {
        return EntryName::Temporary;
    }
    EntryName::Other
}

fn invalid_input(message: String) -> PersistError {
    PersistError::Io {
        kind: format!("{:?}", std::io::ErrorKind::InvalidInput),
        message,
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn record_header_round_trips() {
        let header = RecordHeader {
            kind: RecordKind::Shard,
            commit: true,
            payload_len: 1234,
            batch: 99,
            payload_crc: 0xdead_beef,
        };
        let bytes = encode_record_header(&header);
        assert_eq!(decode_record_header(&bytes), Ok(header));
    }

    #[test]
    fn file_header_round_trips_and_refuses_newer_versions() {
        let bytes = encode_file_header(FileKind::Snapshot, 7);
        assert_eq!(decode_file_header(FileKind::Snapshot, &bytes), Ok(7));
        assert!(decode_file_header(FileKind::Segment, &bytes).is_err());
        let mut newer = bytes;
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(
            decode_file_header(FileKind::Snapshot, &newer),
            Err(HeaderError::FutureVersion(2))
        );
    }

    #[test]
    fn shard_payload_round_trips() {
        let shard = PersistedShard {
            incarnation: Incarnation(5),
            age: Age(6),
            storage_version: 3,
            state: vec![1, 2, 3],
        };
        let payload = encode_shard_payload("counter", &shard).expect("small payload");
        let fixed = decode_shard_fixed(&payload, payload.len() as u32).expect("valid");
        assert_eq!(fixed.incarnation, Incarnation(5));
        assert_eq!(fixed.age, Age(6));
        assert_eq!(fixed.storage_version, 3);
        let name_end = SHARD_FIXED_LEN + fixed.name_len;
        assert_eq!(
            decode_name(&payload[SHARD_FIXED_LEN..name_end]).as_deref(),
            Ok("counter")
        );
        assert_eq!(&payload[name_end..], &[1, 2, 3]);
    }

    #[test]
    fn entry_names_are_classified() {
        assert_eq!(parse_entry_name(&segment_name(42)), EntryName::Segment(42));
        assert_eq!(
            parse_entry_name(&snapshot_name(42)),
            EntryName::Snapshot(42)
        );
        assert_eq!(
            parse_entry_name(&snapshot_temp_name(42)),
            EntryName::Temporary
        );
        assert_eq!(parse_entry_name("LOCK"), EntryName::Other);
        assert_eq!(parse_entry_name("wal-12.log"), EntryName::Other);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _header = decode_record_header(&bytes);
            let _file = decode_file_header(FileKind::Segment, &bytes);
            let _fixed = decode_shard_fixed(&bytes, bytes.len() as u32);
            let _end = decode_snapshot_end(&bytes);
        }

        #[test]
        fn any_single_bit_flip_in_a_record_header_is_detected(bit in 0usize..(RECORD_HEADER_LEN * 8)) {
            let header = RecordHeader {
                kind: RecordKind::Shard,
                commit: false,
                payload_len: 77,
                batch: 3,
                payload_crc: 12345,
            };
            let mut bytes = encode_record_header(&header);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode_record_header(&bytes).is_err());
        }
    }
}

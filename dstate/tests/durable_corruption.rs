//! Damage to the files of the durable store: torn tails are cut, damage elsewhere is a typed
//! error, newer formats are refused, and no damaged byte ever comes back as data.
#![cfg(all(feature = "durable", unix))]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use dstate::{
    Age, DurableOptions, DurablePersistence, Fault, FaultInjector, FaultOp, Incarnation,
    PersistError, PersistedShard, StatePersistence,
};
use futures::executor::block_on;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const FILE_HEADER: u64 = 32;
const RECORD_HEADER: u64 = 32;
const SHARD_FIXED: u64 = 22;
const NAME: &str = "state";
const STATE_LEN: usize = 300;
/// Every save below is one batch of one record of this size.
const RECORD: u64 = RECORD_HEADER + SHARD_FIXED + NAME.len() as u64 + STATE_LEN as u64;

fn value(age: u64) -> PersistedShard {
    PersistedShard {
        incarnation: Incarnation(42),
        age: Age(age),
        storage_version: 1,
        state: vec![age as u8; STATE_LEN],
    }
}

fn segment(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("wal-{number:016x}.log"))
}

/// A store holding `count` saves of one state, each its own batch, closed again.
fn store_with_saves(count: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DurablePersistence::open(dir.path()).expect("open");
    for age in 1..=count {
        block_on(store.save(NAME, &value(age))).expect("save");
    }
    drop(store);
    assert_eq!(
        file_len(&segment(dir.path(), 1)),
        FILE_HEADER + count * RECORD
    );
    dir
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset as usize] ^= 1 << bit;
    std::fs::write(path, bytes).expect("write");
}

fn load(dir: &Path) -> Result<Option<PersistedShard>, PersistError> {
    let store = DurablePersistence::open(dir)?;
    block_on(store.load(NAME))
}

#[test]
fn a_torn_last_record_is_truncated_at_every_cut() {
    let cuts = [1, 5, 31, 32, 33, 60, RECORD - 1];
    for cut in cuts {
        let dir = store_with_saves(5);
        let wal = segment(dir.path(), 1);
        let full = file_len(&wal);
        OpenOptions::new()
            .write(true)
            .open(&wal)
            .expect("open")
            .set_len(full - cut)
            .expect("truncate");
        assert_eq!(load(dir.path()), Ok(Some(value(4))), "cut {cut}");
        assert_eq!(
            file_len(&wal),
            full - RECORD,
            "cut {cut}: tail not truncated"
        );
        // The store appends after the cut and recovers that too.
        {
            let store = DurablePersistence::open(dir.path()).expect("reopen");
            block_on(store.save(NAME, &value(6))).expect("save after recovery");
        }
        assert_eq!(load(dir.path()), Ok(Some(value(6))), "cut {cut}");
    }
}

#[test]
fn garbage_or_zeros_after_the_last_record_are_dropped() {
    for tail in [
        vec![0u8; 4096],
        vec![0xA5; 100],
        b"DSr1 not a header".to_vec(),
    ] {
        let dir = store_with_saves(3);
        let wal = segment(dir.path(), 1);
        let full = file_len(&wal);
        let mut file = OpenOptions::new().append(true).open(&wal).expect("open");
        file.write_all(&tail).expect("append");
        drop(file);
        assert_eq!(load(dir.path()), Ok(Some(value(3))));
        assert_eq!(file_len(&wal), full);
    }
}

#[test]
fn a_bad_checksum_before_later_batches_is_a_typed_error() {
    let dir = store_with_saves(5);
    let wal = segment(dir.path(), 1);
    let second = FILE_HEADER + RECORD;
    // A bit of the state bytes of the second record: its payload checksum fails.
    flip_bit(&wal, second + RECORD - 10, 3);
    match load(dir.path()) {
        Err(PersistError::Corrupt { path, offset, .. }) => {
            assert_eq!(offset, second);
            assert!(path.ends_with("wal-0000000000000001.log"), "{path}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The store does not "repair" what it refused: the file is untouched.
    assert_eq!(file_len(&wal), FILE_HEADER + 5 * RECORD);

    let dir = store_with_saves(5);
    let wal = segment(dir.path(), 1);
    // A bit of the third record's header (its batch number).
    flip_bit(&wal, FILE_HEADER + 2 * RECORD + 17, 0);
    assert!(matches!(
        load(dir.path()),
        Err(PersistError::Corrupt { .. })
    ));
}

#[test]
fn damage_inside_the_last_batch_is_treated_as_a_torn_write() {
    // Documented limit: damage in the last batch looks exactly like a torn write, so the batch
    // is dropped and the previous value comes back (never the damaged bytes).
    let dir = store_with_saves(5);
    let wal = segment(dir.path(), 1);
    flip_bit(&wal, FILE_HEADER + 4 * RECORD + 100, 6);
    assert_eq!(load(dir.path()), Ok(Some(value(4))));
}

#[test]
fn damage_to_a_snapshot_is_a_typed_error() {
    let dir = store_with_saves(3);
    {
        let store = DurablePersistence::open(dir.path()).expect("open");
        block_on(store.compact()).expect("compact");
    }
    let snapshot = dir.path().join("snap-0000000000000001.snap");
    assert!(snapshot.exists());
    assert_eq!(load(dir.path()), Ok(Some(value(3))));
    flip_bit(&snapshot, FILE_HEADER + 50, 1);
    assert!(matches!(
        load(dir.path()),
        Err(PersistError::Corrupt { .. })
    ));
}

#[test]
fn a_newer_format_is_refused() {
    let dir = store_with_saves(2);
    let wal = segment(dir.path(), 1);
    let mut bytes = std::fs::read(&wal).expect("read");
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&wal, &bytes).expect("write");
    assert_eq!(
        load(dir.path()),
        Err(PersistError::FutureVersion {
            found: 2,
            supported: 1
        })
    );
    // Also with a header checksum that matches the newer header.
    let crc = crc32c::crc32c(&bytes[0..24]);
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&wal, &bytes).expect("write");
    assert!(matches!(
        load(dir.path()),
        Err(PersistError::FutureVersion { found: 2, .. })
    ));
}

#[test]
fn a_foreign_file_is_refused() {
    let dir = store_with_saves(2);
    let wal = segment(dir.path(), 1);
    flip_bit(&wal, 0, 0);
    assert!(matches!(
        load(dir.path()),
        Err(PersistError::Corrupt { offset: 0, .. })
    ));
}

#[test]
fn a_missing_segment_is_a_typed_error() {
    // Two failed compactions leave three segments; losing the middle one loses data.
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = FaultInjector::new();
    {
        let options = DurableOptions::default().fault_injector(faults.clone());
        let store = DurablePersistence::open_with(dir.path(), options).expect("open");
        for age in 1..=3 {
            block_on(store.save(NAME, &value(age))).expect("save");
            faults.fail_next(FaultOp::Rename, Fault::Io, 1);
            assert!(block_on(store.compact()).is_err());
        }
    }
    assert!(segment(dir.path(), 3).exists());
    assert_eq!(load(dir.path()), Ok(Some(value(3))));
    std::fs::remove_file(segment(dir.path(), 2)).expect("remove");
    assert!(matches!(
        load(dir.path()),
        Err(PersistError::Corrupt { .. })
    ));

    // The segment after a snapshot holds what was saved since: losing it is damage too.
    let dir = store_with_saves(2);
    {
        let store = DurablePersistence::open(dir.path()).expect("open");
        block_on(store.compact()).expect("compact");
        block_on(store.save(NAME, &value(3))).expect("save");
    }
    std::fs::remove_file(segment(dir.path(), 2)).expect("remove");
    assert!(matches!(
        load(dir.path()),
        Err(PersistError::Corrupt { .. })
    ));
}

#[test]
fn random_damage_never_returns_bytes_that_were_not_saved() {
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let saved: Vec<PersistedShard> = (1..=6).map(value).collect();
    for _ in 0..40 {
        let dir = store_with_saves(6);
        let wal = segment(dir.path(), 1);
        let mut bytes = std::fs::read(&wal).expect("read");
        let at = rng.gen_range(0..bytes.len());
        bytes[at] ^= rng.gen_range(1..=255u8);
        std::fs::write(&wal, &bytes).expect("write");
        match load(dir.path()) {
            Ok(Some(found)) => assert!(saved.contains(&found), "damage at {at}: {found:?}"),
            Ok(None) => assert!((at as u64) < FILE_HEADER + RECORD, "damage at {at}"),
            Err(PersistError::Corrupt { .. }) | Err(PersistError::FutureVersion { .. }) => {}
            Err(other) => panic!("damage at {at}: unexpected error {other:?}"),
        }
    }
}

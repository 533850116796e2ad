//! The durable file backend: see [`DurablePersistence`] for its guarantees and format.

mod compaction;
mod fault;
mod format;
mod fs;
mod index;
mod options;
mod reader;
mod recovery;
mod segment;
mod stats;
mod writer;

#[cfg(test)]
mod sim_fs;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use futures::channel::oneshot;

pub use fault::{Fault, FaultInjector, FaultOp};
pub use options::DurableOptions;
pub use stats::DurableStats;

use self::fs::{Fs, StdFs};
use self::stats::SharedStats;
use self::writer::{Request, SaveRequest, Writer};
use super::{PersistedShard, StatePersistence};
use crate::error::PersistError;
use crate::runtime::BoxFuture;

/// A durable [`StatePersistence`] that keeps a node's shards in one directory: a write-ahead
/// log with group commit, checksummed records, snapshots and compaction.
///
/// Opening runs recovery on the calling thread; afterwards one writer thread does all file I/O
/// (group commit, loads) and compactions run on a short-lived thread of their own. No async
/// runtime is needed: callers are answered through futures-aware one-shot channels. Dropping the
/// store finishes queued saves, stops a running compaction and joins its threads.
///
/// # Guarantees
///
/// - **Durable acknowledgement.** [`save`](StatePersistence::save) returns `Ok` only after the
///   record was written and `fdatasync`ed (and the directory `fsync`ed whenever a file was
///   created or renamed). An acknowledged save survives `kill -9` and power loss, provided the
///   disk honours flushes.
/// - **Group commit.** Concurrent saves (of different states, or whatever the host hands over)
///   are written by one thread as one batch with one vectored write and one `fdatasync`; each
///   caller is answered once its own batch is durable. No timer is involved: saves that arrive
///   while a sync runs form the next batch.
/// - **Failed saves leave nothing behind.** When a write or sync fails (`ENOSPC`, `EIO`,
///   `EACCES`), every save of the batch gets a typed [`PersistError`], the segment is truncated
///   back to its last durable batch and that truncation is synced, so the failed batch cannot
///   reappear after a crash. If even the truncation fails, the log refuses further appends
///   (each save retries the truncation first) — the store works again once the disk does.
/// - **Recovery** ([`DurablePersistence::open`]) replays the newest snapshot and the log after
///   it. A record cut short or damaged at the very end of the log, with no valid record of a
///   later batch after it, is a torn write: that unacknowledged batch is truncated away and
///   logged. Damage anywhere else — in a snapshot, in an older segment, or followed by later
///   batches — is [`PersistError::Corrupt`] with the file and offset; nothing is skipped.
///   Files of a newer format are refused with [`PersistError::FutureVersion`].
/// - **Bounded disk use and recovery time.** Once superseded records exceed both the
///   [compaction threshold](DurableOptions::compaction_threshold) and the live data, the latest
///   record of every state is copied into a new snapshot in the background and older files are
///   removed: the files stay below about twice the live data plus the threshold.
/// - **Order.** Saves are applied in the order their futures were first polled; of concurrent
///   saves of one state, the one queued last wins. The work of a save (copying and
///   checksumming the state) starts at its first poll, on the caller's thread.
/// - **Storage versions** are stored and returned as given; migrating older ones is the
///   host's job (`migrate_state`).
///
/// Not guaranteed: a record damaged inside the *last* batch of the log cannot be told apart
/// from a torn write, so it is dropped (with a warning) like one, even if that batch had been
/// acknowledged. One store per directory (an exclusive `flock` on `LOCK` enforces it). Unix
/// only.
///
/// # Format (version 1)
///
/// A directory holds `wal-<n>.log` segments (16 hex digits), at most one `snap-<n>.snap`
/// snapshot covering segments `<= n`, and `LOCK`. All integers are little-endian.
///
/// ```text
/// file header (32 B):   magic "DSTATEWL" | "DSTATESN" (8) | format version u32 | 0 u32
///                       | sequence u64 (segment number / last covered segment)
///                       | crc32c of bytes 0..24 (4) | 0 u32
/// record header (32 B): magic "DSr1" (4) | crc32c of header bytes 8..32 (4)
///                       | payload length u32 | kind u8 (1 shard, 2 snapshot end)
///                       | flags u8 (bit 0: commit = last record of its batch) | 0 u16
///                       | batch u64 | crc32c of the payload (4) | 0 u32
/// shard payload:        incarnation u64 | age u64 | storage version u32
///                       | name length u16 | name (UTF-8) | state bytes
/// snapshot end payload: number of shard records u64
/// ```
///
/// A segment is a header and then batches: each batch's records share a batch number that
/// grows through the log, and only its last record carries the commit flag. Recovery applies a
/// batch only when it has seen its commit record. A snapshot is a header, one shard record per
/// state and an end record; it is written under a temporary name, synced, renamed and the
/// directory synced, so it is whole or absent.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> Result<(), dstate::PersistError> {
/// use dstate::{Age, DurablePersistence, Incarnation, PersistedShard, StatePersistence};
///
/// let store = DurablePersistence::open("/var/lib/my-node/dstate")?;
/// let shard = PersistedShard {
///     incarnation: Incarnation(1),
///     age: Age(1),
///     storage_version: 1,
///     state: b"hello".to_vec(),
/// };
/// store.save("greeting", &shard).await?;
/// assert_eq!(store.load("greeting").await?, Some(shard));
/// # Ok(())
/// # }
/// ```
pub struct DurablePersistence {
    requests: Sender<Request>,
    writer: Option<JoinHandle<()>>,
    stats: Arc<SharedStats>,
    dir: PathBuf,
    /// The directory lock, released when the store is dropped (after the writer stopped).
    _lock: Box<dyn Send + Sync>,
}

impl DurablePersistence {
    /// Open (or create) the store in `dir` with default options, recovering what it holds.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, PersistError> {
        Self::open_with(dir, DurableOptions::default())
    }

    /// Open (or create) the store in `dir` with `options`.
    pub fn open_with(dir: impl AsRef<Path>, options: DurableOptions) -> Result<Self, PersistError> {
        let fs: Arc<dyn Fs> = match &options.fault_injector {
            Some(faults) => Arc::new(fault::FaultyFs::new(Arc::new(StdFs), faults.clone())),
            None => Arc::new(StdFs),
        };
        Self::open_on(fs, dir.as_ref(), options)
    }

    /// Open the store in `dir` of the file system `fs`.
    pub(crate) fn open_on(
        fs: Arc<dyn Fs>,
        dir: &Path,
        options: DurableOptions,
    ) -> Result<Self, PersistError> {
        fs.create_dir_all(dir).map_err(|err| io_error(err, dir))?;
        let lock = fs.lock_dir(dir).map_err(|err| {
            if err.kind() == io::ErrorKind::WouldBlock {
                PersistError::Locked {
                    path: dir.display().to_string(),
                }
            } else {
                io_error(err, dir)
            }
        })?;
        let recovered = recovery::recover(&*fs, dir)?;
        let stats = Arc::new(SharedStats::default());
        stats.set_sizes(recovered.index.disk_bytes(), recovered.index.live_bytes());
        tracing::info!(
            dir = %dir.display(),
            disk_bytes = recovered.index.disk_bytes(),
            live_bytes = recovered.index.live_bytes(),
            "durable store opened"
        );
        let (sender, receiver) = mpsc::channel();
        let writer = Writer::new(
            Arc::clone(&fs),
            dir.to_path_buf(),
            options,
            recovered,
            Arc::clone(&stats),
            receiver,
            sender.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("dstate-wal".to_owned())
            .spawn(move || writer.run())
            .map_err(|err| io_error(err, dir))?;
        Ok(DurablePersistence {
            requests: sender,
            writer: Some(thread),
            stats,
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// Compact now: write a snapshot of every state's latest record and remove older files.
    /// Resolves when a compaction that covers every save acknowledged before the call is
    /// done. Compaction also runs by itself when due; this is for tools and tests.
    pub fn compact(&self) -> BoxFuture<'_, Result<(), PersistError>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.send(Request::Compact { reply })?;
            answer.await.unwrap_or_else(|_| Err(closed()))
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Current counters.
    pub fn stats(&self) -> DurableStats {
        self.stats.read()
    }

    fn send(&self, request: Request) -> Result<(), PersistError> {
        self.requests.send(request).map_err(|_| closed())
    }
}

impl StatePersistence for DurablePersistence {
    fn load<'a>(
        &'a self,
        state: &'a str,
    ) -> BoxFuture<'a, Result<Option<PersistedShard>, PersistError>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.send(Request::Load {
                name: state.to_owned(),
                reply,
            })?;
            answer.await.unwrap_or_else(|_| Err(closed()))
        })
    }

    fn save<'a>(
        &'a self,
        state: &'a str,
        shard: &'a PersistedShard,
    ) -> BoxFuture<'a, Result<(), PersistError>> {
        Box::pin(async move {
            let payload = format::encode_shard_payload(state, shard)?;
            let payload_len = u32::try_from(payload.len())
                .map_err(|_| internal("encoded payload exceeds the record limit"))?;
            let payload_crc = crc32c::crc32c(&payload);
            let (reply, answer) = oneshot::channel();
            self.send(Request::Save(SaveRequest {
                name: state.to_owned(),
                payload,
                payload_len,
                payload_crc,
                reply,
            }))?;
            answer.await.unwrap_or_else(|_| Err(closed()))
        })
    }
}

impl Drop for DurablePersistence {
    fn drop(&mut self) {
        // If the writer is gone already there is nothing to stop.
        let _ignored = self.requests.send(Request::Shutdown);
        if let Some(thread) = self.writer.take() {
            if thread.join().is_err() {
                tracing::error!(dir = %self.dir.display(), "durable store writer panicked");
            }
        }
    }
}

impl fmt::Debug for DurablePersistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurablePersistence")
            .field("dir", &self.dir)
            .field("stats", &self.stats())
            .finish()
    }
}

/// An I/O error on `path`, typed: `ENOSPC` and `EACCES` get their own variants.
pub(crate) fn io_error(err: io::Error, path: &Path) -> PersistError {
    match PersistError::from(err) {
        PersistError::PermissionDenied { .. } => PersistError::PermissionDenied {
            path: path.display().to_string(),
        },
        PersistError::Io { kind, message } => PersistError::Io {
            kind,
            message: format!("{}: {message}", path.display()),
        },
        other => other,
    }
}

/// Damaged data at `offset` of `path`.
pub(crate) fn corrupt(path: &Path, offset: u64, reason: &str) -> PersistError {
    PersistError::Corrupt {
        path: path.display().to_string(),
        offset,
        reason: reason.to_owned(),
    }
}

/// A broken internal invariant, reported rather than panicking.
pub(crate) fn internal(message: &str) -> PersistError {
    PersistError::Io {
        kind: format!("{:?}", io::ErrorKind::Other),
        message: format!("internal error in the durable store: {message}"),
    }
}

/// The writer thread is gone.
fn closed() -> PersistError {
    PersistError::Io {
        kind: format!("{:?}", io::ErrorKind::BrokenPipe),
        message: "the durable store has stopped".to_owned(),
    }
}

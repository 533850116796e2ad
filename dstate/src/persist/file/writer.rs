//! The writer thread: group commit, loads, and the scheduling of compactions.
//!
//! One thread owns the active segment and the index. It takes the first request from its
//! queue, then everything else already queued (up to `max_batch_bytes` of saves), writes all
//! saves as one batch with one vectored write and one `fdatasync`, and only then answers each
//! of them. Saves that arrive while an `fdatasync` runs wait in the queue and form the next
//! batch, so concurrent callers share syncs without any timer.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use futures::channel::oneshot;

use super::compaction::{CompactionJob, CompactionOutput, Source};
use super::format::{encode_record_header, parse_entry_name, EntryName, RecordHeader, RecordKind};
use super::fs::Fs;
use super::index::{FileId, Index, Location};
use super::options::DurableOptions;
use super::reader::read_shard;
use super::recovery::Recovered;
use super::segment::ActiveSegment;
use super::stats::SharedStats;
use super::{internal, io_error};
use crate::error::PersistError;
use crate::persist::PersistedShard;

/// Reply channel of one request.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, PersistError>>;

/// A request to the writer thread.
pub(crate) enum Request {
    /// Append a shard record; answer once it is durable.
    Save(SaveRequest),
    /// Read the latest shard of a state.
    Load {
        name: String,
        reply: Reply<Option<PersistedShard>>,
    },
    /// Compact everything written so far; answer when done.
    Compact { reply: Reply<()> },
    /// A compaction thread finished.
    CompactionDone(Result<CompactionOutput, PersistError>),
    /// Finish queued work and stop.
    Shutdown,
}

/// An encoded shard record payload, ready to append.
pub(crate) struct SaveRequest {
    pub(crate) name: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) payload_len: u32,
    pub(crate) payload_crc: u32,
    pub(crate) reply: Reply<()>,
}

/// A compaction in progress.
struct Running {
    abort: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    waiters: Vec<Reply<()>>,
}

/// State of the writer thread.
pub(crate) struct Writer {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    options: DurableOptions,
    index: Index,
    active: ActiveSegment,
    next_batch: u64,
    stats: Arc<SharedStats>,
    requests: Receiver<Request>,
    /// Handed to compaction threads to report back.
    sender: Sender<Request>,
    /// A save that did not fit in the previous batch.
    carry: Option<Request>,
    running: Option<Running>,
    /// `compact()` calls waiting for the next compaction to start.
    queued: Vec<Reply<()>>,
    /// After a failed compaction, wait for the garbage to grow past this before retrying.
    retry_above: u64,
}

impl Writer {
    pub(crate) fn new(
        fs: Arc<dyn Fs>,
        dir: PathBuf,
        options: DurableOptions,
        recovered: Recovered,
        stats: Arc<SharedStats>,
        requests: Receiver<Request>,
        sender: Sender<Request>,
    ) -> Self {
        Writer {
            fs,
            dir,
            options,
            index: recovered.index,
            active: recovered.active,
            next_batch: recovered.next_batch,
            stats,
            requests,
            sender,
            carry: None,
            running: None,
            queued: Vec::new(),
            retry_above: 0,
        }
    }

    /// Serve requests until `Shutdown`.
    pub(crate) fn run(mut self) {
        loop {
            let first = match self.carry.take() {
                Some(request) => request,
                None => match self.requests.recv() {
                    Ok(request) => request,
                    // Every handle is gone (the writer holds a sender itself, so this only
                    // happens if it was dropped); nothing is left to answer.
                    Err(_) => return,
                },
            };
            let mut saves = Vec::new();
            let mut others = Vec::new();
            let mut batch_bytes = 0usize;
            let limit = self.options.max_batch_bytes.get();
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Save(save) => {
                        let size = save.payload.len();
                        if !saves.is_empty() && batch_bytes + size > limit {
                            self.carry = Some(Request::Save(save));
                            break;
                        }
                        batch_bytes += size;
                        saves.push(save);
                    }
                    other => others.push(other),
                }
                next = self.requests.try_recv().ok();
            }
            self.commit(saves);
            let mut stop = false;
            for request in others {
                match request {
                    Request::Load { name, reply } => {
                        // The caller may have stopped waiting; nothing to do then.
                        let _ignored = reply.send(self.load(&name));
                    }
                    Request::Compact { reply } => self.queued.push(reply),
                    Request::CompactionDone(result) => self.finish_compaction(result),
                    Request::Shutdown => stop = true,
                    Request::Save(_) => {}
                }
            }
            if stop {
                self.shutdown();
                return;
            }
            self.maybe_compact();
            self.publish_sizes();
        }
    }

    /// Append `saves` as one batch, sync once, answer each.
    fn commit(&mut self, saves: Vec<SaveRequest>) {
        let Some(last) = saves.len().checked_sub(1) else {
            return;
        };
        let batch = self.next_batch;
        self.next_batch += 1;
        let headers: Vec<_> = saves
            .iter()
            .enumerate()
            .map(|(i, save)| {
                encode_record_header(&RecordHeader {
                    kind: RecordKind::Shard,
                    commit: i == last,
                    payload_len: save.payload_len,
                    batch,
                    payload_crc: save.payload_crc,
                })
            })
            .collect();
        let mut bufs: Vec<&[u8]> = Vec::with_capacity(saves.len() * 2);
        let mut total = 0u64;
        for (header, save) in headers.iter().zip(&saves) {
            bufs.push(header);
            bufs.push(&save.payload);
            total += (header.len() + save.payload.len()) as u64;
        }
        let appended = self.active.append(&bufs, total);
        drop(bufs);
        let count = saves.len() as u64;
        match appended {
            Ok(mut offset) => {
                let file = self.active.id();
                self.index.set_file_len(file, self.active.end());
                let mut replies = Vec::with_capacity(saves.len());
                for save in saves {
                    let location = Location {
                        file,
                        offset,
                        payload_len: save.payload_len,
                    };
                    offset += location.record_len();
                    self.index.insert(save.name, location);
                    replies.push(save.reply);
                }
                SharedStats::add(&self.stats.commits, 1);
                SharedStats::add(&self.stats.saves, count);
                SharedStats::add(&self.stats.bytes_appended, total);
                self.publish_sizes();
                for reply in replies {
                    // The caller may have stopped waiting; its data is durable regardless.
                    let _ignored = reply.send(Ok(()));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, saves = count, batch, "group commit failed");
                SharedStats::add(&self.stats.failed_saves, count);
                self.publish_sizes();
                for save in saves {
                    // The caller may have stopped waiting; nothing was acknowledged.
                    let _ignored = save.reply.send(Err(err.clone()));
                }
            }
        }
    }

    fn load(&self, name: &str) -> Result<Option<PersistedShard>, PersistError> {
        let Some(location) = self.index.get(name) else {
            return Ok(None);
        };
        let file = self
            .index
            .file(location.file)
            .ok_or_else(|| internal("indexed file is not open"))?;
        read_shard(&*file, &location.file.path(&self.dir), location).map(Some)
    }

    /// Start a compaction if one was asked for or the garbage crossed the threshold.
    fn maybe_compact(&mut self) {
        if self.running.is_some() {
            return;
        }
        let garbage = self.index.garbage_bytes();
        let due = garbage > self.options.compaction_threshold
            && garbage > self.index.live_bytes()
            && garbage > self.retry_above;
        if self.queued.is_empty() && !due {
            return;
        }
        let waiters = std::mem::take(&mut self.queued);
        if let Err(err) = self.start_compaction(waiters) {
            self.compaction_failed(err, Vec::new());
        }
    }

    /// Roll to a new segment and copy the latest records of the older files on a new thread.
    fn start_compaction(&mut self, waiters: Vec<Reply<()>>) -> Result<(), PersistError> {
        let fail = |err: PersistError, waiters: Vec<Reply<()>>| {
            for waiter in waiters {
                let _ignored = waiter.send(Err(err.clone()));
            }
            err
        };
        if let Err(err) = self.active.repair() {
            return Err(fail(err, waiters));
        }
        let covers = self.active.number;
        let next = match ActiveSegment::create(&*self.fs, &self.dir, covers + 1) {
            Ok(next) => next,
            Err(err) => return Err(fail(err, waiters)),
        };
        self.index
            .add_file(next.id(), Arc::clone(&next.file), next.end());
        self.active = next;
        let mut sources = Vec::new();
        for (name, location) in self.index.entries() {
            let Some(file) = self.index.file(location.file) else {
                return Err(fail(internal("indexed file is not open"), waiters));
            };
            sources.push(Source {
                name: name.clone(),
                location: *location,
                file,
            });
        }
        let abort = Arc::new(AtomicBool::new(false));
        let job = CompactionJob {
            covers,
            sources,
            fs: Arc::clone(&self.fs),
            dir: self.dir.clone(),
            abort: Arc::clone(&abort),
        };
        let report = self.sender.clone();
        let spawned = std::thread::Builder::new()
            .name("dstate-compact".to_owned())
            .spawn(move || {
                // A panic would be a bug here; it still must not leave the writer waiting for
                // this report forever.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run()))
                    .unwrap_or_else(|_| Err(internal("compaction panicked")));
                // The writer waits for this report before it stops, so it is received.
                let _ignored = report.send(Request::CompactionDone(result));
            });
        match spawned {
            Ok(thread) => {
                tracing::debug!(covers, "compaction started");
                self.running = Some(Running {
                    abort,
                    thread,
                    waiters,
                });
                Ok(())
            }
            Err(err) => Err(fail(io_error(err, &self.dir), waiters)),
        }
    }

    fn finish_compaction(&mut self, result: Result<CompactionOutput, PersistError>) {
        let Some(running) = self.running.take() else {
            return;
        };
        if running.thread.join().is_err() {
            tracing::error!("compaction thread panicked");
        }
        let output = match result {
            Ok(output) => output,
            Err(err) if running.abort.load(Ordering::Relaxed) => {
                tracing::debug!(error = %err, "compaction stopped for shutdown");
                return;
            }
            Err(err) => return self.compaction_failed(err, running.waiters),
        };
        let covers = output.covers;
        for (name, old, new) in &output.moved {
            self.index.replace_if(name, *old, *new);
        }
        self.index
            .add_file(FileId::Snapshot(covers), output.file, output.len);
        let obsolete = |id: FileId| match id {
            FileId::Segment(n) => n <= covers,
            FileId::Snapshot(k) => k < covers,
        };
        let dropped = self.index.drop_files(obsolete);
        debug_assert!(dropped.iter().all(|id| !self.index.references(*id)));
        self.remove_obsolete_files(covers);
        SharedStats::add(&self.stats.compactions, 1);
        self.publish_sizes();
        tracing::debug!(covers, removed = dropped.len(), "compaction finished");
        for waiter in running.waiters {
            let _ignored = waiter.send(Ok(()));
        }
    }

    fn compaction_failed(&mut self, err: PersistError, waiters: Vec<Reply<()>>) {
        tracing::warn!(error = %err, "compaction failed; the log keeps growing until it succeeds");
        SharedStats::add(&self.stats.failed_compactions, 1);
        self.publish_sizes();
        self.retry_above = self
            .index
            .garbage_bytes()
            .saturating_add(self.options.compaction_threshold);
        for waiter in waiters {
            let _ignored = waiter.send(Err(err.clone()));
        }
    }

    /// Remove segments `<= covers`, older snapshots and unfinished ones. Failures only cost
    /// disk space: recovery ignores and removes such files.
    fn remove_obsolete_files(&self, covers: u64) {
        let names = match self.fs.list(&self.dir) {
            Ok(names) => names,
            Err(err) => {
                tracing::warn!(error = %err, "could not list the store directory");
                return;
            }
        };
        for name in names {
            let obsolete = match parse_entry_name(&name) {
                EntryName::Segment(n) => n <= covers,
                EntryName::Snapshot(k) => k < covers,
                EntryName::Temporary => true,
                EntryName::Other => false,
            };
            if obsolete {
                if let Err(err) = self.fs.remove(&self.dir.join(&name)) {
                    tracing::warn!(file = %name, error = %err, "could not remove an obsolete file");
                }
            }
        }
        if let Err(err) = self.fs.sync_dir(&self.dir) {
            tracing::warn!(error = %err, "could not sync the store directory");
        }
    }

    /// Stop a running compaction and wait for it.
    fn shutdown(&mut self) {
        let Some(running) = self.running.as_ref() else {
            return;
        };
        running.abort.store(true, Ordering::Relaxed);
        while self.running.is_some() {
            match self.requests.recv() {
                Ok(Request::CompactionDone(result)) => self.finish_compaction(result),
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    fn publish_sizes(&self) {
        self.stats
            .set_sizes(self.index.disk_bytes(), self.index.live_bytes());
    }
}

//! Fault injection for the durable store: make chosen file operations fail with `ENOSPC`,
//! `EIO` or `EACCES`, or hold them until released, to test how a node copes.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::fs::{Fs, FsFile};

/// A file operation of the durable store that a [`FaultInjector`] can fail or pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultOp {
    /// Writing to a log segment or snapshot. A failed write first writes half of its bytes,
    /// like a write cut short by a full disk.
    Write,
    /// `fdatasync` of a file. A failed sync still syncs first: the data may be durable even
    /// though the caller is told it failed, the harder case for the store.
    Sync,
    /// `fsync` of the store's directory.
    SyncDir,
    /// Creating a file.
    Create,
    /// Renaming a file (a finished snapshot into place).
    Rename,
    /// Removing a file (after compaction).
    Remove,
    /// Truncating a file.
    SetLen,
    /// Reading a file.
    Read,
}

/// The error an injected fault produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// `ENOSPC`: the device is full.
    NoSpace,
    /// `EIO`: the device failed.
    Io,
    /// `EACCES`: permission denied.
    PermissionDenied,
}

impl Fault {
    fn to_io_error(self) -> io::Error {
        // Linux and the BSDs share these errno values.
        const ENOSPC: i32 = 28;
        const EIO: i32 = 5;
        const EACCES: i32 = 13;
        io::Error::from_raw_os_error(match self {
            Fault::NoSpace => ENOSPC,
            Fault::Io => EIO,
            Fault::PermissionDenied => EACCES,
        })
    }
}

/// Makes file operations of a [`DurablePersistence`](super::DurablePersistence) fail or wait.
///
/// Pass a clone to [`DurableOptions::fault_injector`](super::DurableOptions::fault_injector);
/// clones share their rules. Meant for tests of how an application handles a full or failing
/// disk; it costs one uncontended lock per file operation.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    rules: Mutex<Rules>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Rules {
    /// Faults to inject per operation, with how many remain (`None`: until cleared).
    failures: HashMap<FaultOp, (Fault, Option<usize>)>,
    /// Operations that wait while paused.
    paused: HashMap<FaultOp, usize>,
    /// Count of injected faults.
    injected: u64,
}

impl FaultInjector {
    /// An injector with no rules: every operation goes through.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the next `count` operations `op` fail with `fault`.
    pub fn fail_next(&self, op: FaultOp, fault: Fault, count: usize) {
        self.lock().failures.insert(op, (fault, Some(count)));
    }

    /// Make every operation `op` fail with `fault` until [`clear`](Self::clear).
    pub fn fail_always(&self, op: FaultOp, fault: Fault) {
        self.lock().failures.insert(op, (fault, None));
    }

    /// Remove every failure rule (paused operations stay paused).
    pub fn clear(&self) {
        self.lock().failures.clear();
    }

    /// Number of faults injected so far.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// Hold every operation `op` until [`resume`](Self::resume) is called.
    pub fn pause(&self, op: FaultOp) {
        self.lock().paused.entry(op).or_insert(0);
        self.shared.changed.notify_all();
    }

    /// Release the operations held by [`pause`](Self::pause).
    pub fn resume(&self, op: FaultOp) {
        self.lock().paused.remove(&op);
        self.shared.changed.notify_all();
    }

    /// Wait until some thread is held at the paused operation `op`, at most `timeout`.
    /// Returns whether one is.
    pub fn wait_until_paused(&self, op: FaultOp, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut rules = self.lock();
        loop {
            if rules.paused.get(&op).copied().unwrap_or(0) > 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            rules = match self.shared.changed.wait_timeout(rules, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Called before each operation: wait while `op` is paused, then return the fault to
    /// inject, if any.
    fn check(&self, op: FaultOp) -> Option<io::Error> {
        let mut rules = self.lock();
        if let Some(waiting) = rules.paused.get_mut(&op) {
            *waiting += 1;
            self.shared.changed.notify_all();
            while rules.paused.contains_key(&op) {
                rules = match self.shared.changed.wait(rules) {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
            }
        }
        let (fault, remaining) = rules.failures.get_mut(&op)?;
        let fault = *fault;
        match remaining {
            Some(0) => return None,
            Some(n) => *n -= 1,
            None => {}
        }
        rules.injected += 1;
        tracing::debug!(?op, ?fault, "injecting file fault");
        Some(fault.to_io_error())
    }

    fn lock(&self) -> MutexGuard<'_, Rules> {
        // The rules stay consistent across a panic (each update is a single insert/remove),
        // so a poisoned lock is still usable.
        self.shared
            .rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A file system that consults a [`FaultInjector`] before each operation.
pub(crate) struct FaultyFs {
    inner: Arc<dyn Fs>,
    faults: FaultInjector,
}

impl FaultyFs {
    pub(crate) fn new(inner: Arc<dyn Fs>, faults: FaultInjector) -> Self {
        FaultyFs { inner, faults }
    }

    fn check(&self, op: FaultOp) -> io::Result<()> {
        match self.faults.check(op) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

impl Fs for FaultyFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn Send + Sync>> {
        self.inner.lock_dir(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        self.check(FaultOp::Create)?;
        let inner = self.inner.create(path)?;
        Ok(Arc::new(FaultyFile {
            inner,
            faults: self.faults.clone(),
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let inner = self.inner.open(path)?;
        Ok(Arc::new(FaultyFile {
            inner,
            faults: self.faults.clone(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(FaultOp::Rename)?;
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.check(FaultOp::Remove)?;
        self.inner.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(FaultOp::SyncDir)?;
        self.inner.sync_dir(dir)
    }
}

struct FaultyFile {
    inner: Arc<dyn FsFile>,
    faults: FaultInjector,
}

impl FsFile for FaultyFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if let Some(err) = self.faults.check(FaultOp::Read) {
            return Err(err);
        }
        self.inner.read_exact_at(offset, buf)
    }

    fn write_all_at(&self, offset: u64, bufs: &[&[u8]]) -> io::Result<()> {
        let Some(err) = self.faults.check(FaultOp::Write) else {
            return self.inner.write_all_at(offset, bufs);
        };
        // Cut the write short: half of its bytes reach the file, like a disk filling up.
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut budget = total / 2;
        let mut prefix: Vec<&[u8]> = Vec::new();
        for buf in bufs {
            if budget == 0 {
                break;
            }
            let take = budget.min(buf.len());
            prefix.push(&buf[..take]);
            budget -= take;
        }
        self.inner.write_all_at(offset, &prefix)?;
        Err(err)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if let Some(err) = self.faults.check(FaultOp::SetLen) {
            return Err(err);
        }
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        let Some(err) = self.faults.check(FaultOp::Sync) else {
            return self.inner.sync_data();
        };
        // The worst case for the caller: the data may have reached the disk all the same (as
        // after a failed `fsync` on Linux), yet the call reports failure.
        self.inner.sync_data()?;
        Err(err)
    }
}

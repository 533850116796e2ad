//! An in-memory file system that simulates power loss, for tests.
//!
//! Each file keeps what its last `sync_data` made durable besides its current content; the
//! directory keeps the entries of its last `sync_dir`. [`SimFs::crash`] returns the disk as a
//! reboot would find it: the synced entries, each file holding its synced bytes except that any
//! 512-byte sector changed since may hold the old or the new bytes (chosen by a seed), and a
//! length anywhere between the old and the new one. The crashed instance fails every further
//! operation, so threads of the "dead" process cannot touch the new disk.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::fs::{Fs, FsFile};

const SECTOR: usize = 512;

#[derive(Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Default)]
struct Disk {
    crashed: bool,
    entries: BTreeMap<PathBuf, Arc<Mutex<Inode>>>,
    durable_entries: BTreeMap<PathBuf, Arc<Mutex<Inode>>>,
}

/// The simulated disk; clones share it.
#[derive(Clone, Default)]
pub(crate) struct SimFs {
    disk: Arc<Mutex<Disk>>,
}

impl SimFs {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Power loss: this instance fails from now on; the returned one holds what survived.
    pub(crate) fn crash(&self, seed: u64) -> SimFs {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut disk = lock(&self.disk);
        disk.crashed = true;
        let mut survivor = Disk::default();
        for (path, inode) in &disk.durable_entries {
            let inode = lock(inode);
            let data = torn(&inode.durable, &inode.data, &mut rng);
            let inode = Arc::new(Mutex::new(Inode {
                data: data.clone(),
                durable: data,
            }));
            survivor.entries.insert(path.clone(), Arc::clone(&inode));
            survivor.durable_entries.insert(path.clone(), inode);
        }
        SimFs {
            disk: Arc::new(Mutex::new(survivor)),
        }
    }

    /// The current bytes of `path` (for tests that damage files).
    pub(crate) fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = lock(&self.disk);
        disk.entries.get(path).map(|inode| lock(inode).data.clone())
    }

    fn live(&self) -> io::Result<MutexGuard<'_, Disk>> {
        let disk = lock(&self.disk);
        if disk.crashed {
            return Err(io::Error::from_raw_os_error(5));
        }
        Ok(disk)
    }

    fn file(&self, inode: Arc<Mutex<Inode>>) -> Arc<dyn FsFile> {
        Arc::new(SimFile {
            disk: Arc::clone(&self.disk),
            inode,
        })
    }
}

/// What a file holds after power loss, given its synced and its current bytes.
fn torn(durable: &[u8], data: &[u8], rng: &mut SmallRng) -> Vec<u8> {
    if durable == data {
        return durable.to_vec();
    }
    let (short, long) = if durable.len() <= data.len() {
        (durable.len(), data.len())
    } else {
        (data.len(), durable.len())
    };
    let len = match rng.gen_range(0..3) {
        0 => durable.len(),
        1 => data.len(),
        _ => rng.gen_range(short..=long),
    };
    let mut out = vec![0u8; len];
    for start in (0..len).step_by(SECTOR) {
        let end = (start + SECTOR).min(len);
        let pick_new = rng.gen_bool(0.5);
        for (i, byte) in out[start..end].iter_mut().enumerate() {
            let at = start + i;
            let old = durable.get(at).copied().unwrap_or(0);
            let new = data.get(at).copied().unwrap_or(0);
            *byte = if pick_new { new } else { old };
        }
    }
    out
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Test code: a panic elsewhere must not hide the state from the failing test's report.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Fs for SimFs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        self.live().map(|_| ())
    }

    fn lock_dir(&self, _dir: &Path) -> io::Result<Box<dyn Send + Sync>> {
        self.live().map(|_| Box::new(()) as Box<dyn Send + Sync>)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.live()?;
        Ok(disk
            .entries
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let mut disk = self.live()?;
        let inode = match disk.entries.get(path) {
            Some(inode) => {
                lock(inode).data.clear();
                Arc::clone(inode)
            }
            None => {
                let inode = Arc::new(Mutex::new(Inode::default()));
                disk.entries.insert(path.to_path_buf(), Arc::clone(&inode));
                inode
            }
        };
        drop(disk);
        Ok(self.file(inode))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let disk = self.live()?;
        let inode = disk
            .entries
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        drop(disk);
        Ok(self.file(inode))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.live()?;
        let inode = disk
            .entries
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        disk.entries.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.live()?;
        disk.entries
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.live()?;
        let in_dir = |path: &PathBuf| path.parent() == Some(dir);
        disk.durable_entries.retain(|path, _| !in_dir(path));
        let synced: Vec<_> = disk
            .entries
            .iter()
            .filter(|(path, _)| in_dir(path))
            .map(|(path, inode)| (path.clone(), Arc::clone(inode)))
            .collect();
        disk.durable_entries.extend(synced);
        Ok(())
    }
}

struct SimFile {
    disk: Arc<Mutex<Disk>>,
    inode: Arc<Mutex<Inode>>,
}

impl SimFile {
    /// Run `op` on the inode unless the disk crashed; the disk lock is held throughout so
    /// that a crash sees each operation whole or not at all.
    fn with<T>(&self, op: impl FnOnce(&mut Inode) -> io::Result<T>) -> io::Result<T> {
        let disk = lock(&self.disk);
        if disk.crashed {
            return Err(io::Error::from_raw_os_error(5));
        }
        let mut inode = lock(&self.inode);
        op(&mut inode)
    }
}

impl FsFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        self.with(|inode| Ok(inode.data.len() as u64))
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with(|inode| {
            let start = offset as usize;
            let end = start + buf.len();
            let Some(src) = inode.data.get(start..end) else {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            };
            buf.copy_from_slice(src);
            Ok(())
        })
    }

    fn write_all_at(&self, offset: u64, bufs: &[&[u8]]) -> io::Result<()> {
        self.with(|inode| {
            let mut at = offset as usize;
            for buf in bufs {
                if inode.data.len() < at + buf.len() {
                    inode.data.resize(at + buf.len(), 0);
                }
                inode.data[at..at + buf.len()].copy_from_slice(buf);
                at += buf.len();
            }
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(|inode| {
            inode.data.resize(len as usize, 0);
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(|inode| {
            inode.durable = inode.data.clone();
            Ok(())
        })
    }
}

//! Snapshots are the chain database itself (DESIGN §6), never one blob: a RocksDB
//! checkpoint of the chain (hard links to its immutable files) taken between two
//! applies, described by a manifest (every file with its size and CRC32), streamed
//! to a lagging member in bounded chunks (see `transfer`), and installed by
//! switching the chain's link to it (see `baton_storage::Store::replace_with`).
//!
//! ```text
//!  <data>/snapshots/3/              the snapshot this node built or installed last
//!  <data>/snapshots/incoming/<id>/  one being received, resumable
//! ```

use std::{
    io::Read,
    path::{Path, PathBuf},
    sync::Arc,
};

use alloy_primitives::{B256, keccak256};
use baton_primitives::codec;
use baton_storage::RaftStore;
use serde::{Deserialize, Serialize};

use crate::types::SnapshotMeta;

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    pub(crate) name: String,
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

/// What a snapshot holds, file by file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub(crate) files: Vec<FileEntry>,
}

impl Manifest {
    /// Describes every file in `dir` (reads them all: call it off the apply path).
    pub fn of_dir(dir: &Path) -> std::io::Result<Self> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let (len, crc) = checksum(&entry.path())?;
            files.push(FileEntry { name, len, crc });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self { files })
    }

    /// Total bytes of the snapshot.
    pub(crate) fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.len).sum()
    }

    /// What names this snapshot on the wire: its point in the log and its content.
    pub fn id(&self, meta: &SnapshotMeta) -> B256 {
        let encoded = codec::encode(&(meta, self)).unwrap_or_default();
        keccak256(encoded)
    }

    /// Checks that `dir` holds exactly these files, whole and undamaged.
    pub(crate) fn verify(&self, dir: &Path) -> Result<(), String> {
        for file in &self.files {
            let (len, crc) =
                checksum(&dir.join(&file.name)).map_err(|e| format!("{}: {e}", file.name))?;
            if (len, crc) != (file.len, file.crc) {
                return Err(format!(
                    "{}: {len} bytes with CRC {crc:08x}, the manifest says {} bytes with CRC {:08x}",
                    file.name, file.len, file.crc
                ));
            }
        }
        Ok(())
    }
}

/// Length and CRC32 of a file.
fn checksum(path: &Path) -> std::io::Result<(u64, u32)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((len, hasher.finalize()));
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

/// A snapshot on disk: openraft's snapshot data for baton. A received one (still
/// in `incoming`) is deleted when dropped without being installed.
#[derive(Debug)]
pub struct SnapshotDir {
    pub(crate) dir: PathBuf,
    pub(crate) manifest: Arc<Manifest>,
    received: bool,
}

impl SnapshotDir {
    pub(crate) fn received(dir: PathBuf, manifest: Arc<Manifest>) -> Self {
        Self {
            dir,
            manifest,
            received: true,
        }
    }
}

impl Drop for SnapshotDir {
    fn drop(&mut self) {
        if self.received && self.dir.exists() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The record of the current snapshot, kept in the Raft store.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    meta: SnapshotMeta,
    /// The snapshot's directory, under `snapshots/`.
    dir: String,
    manifest: Manifest,
}

/// Where this node keeps its snapshots, and the record of the current one.
#[derive(Debug, Clone)]
pub(crate) struct Snapshots {
    root: PathBuf,
    raft: RaftStore,
}

impl Snapshots {
    pub(crate) fn new(root: PathBuf, raft: RaftStore) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("incoming"))?;
        Ok(Self { root, raft })
    }

    /// A fresh directory name for a snapshot about to be built.
    pub(crate) fn next_dir(&self) -> PathBuf {
        let taken = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
            .max();
        self.root.join(taken.map_or(0, |n| n + 1).to_string())
    }

    /// Where the snapshot `id` is received.
    pub(crate) fn incoming(&self, id: &B256) -> PathBuf {
        self.root.join("incoming").join(id.to_string())
    }

    /// Makes `dir` (with `manifest`) the current snapshot, durably, and deletes
    /// every other built snapshot.
    pub(crate) fn adopt(
        &self,
        meta: &SnapshotMeta,
        dir: &Path,
        manifest: Manifest,
    ) -> std::io::Result<SnapshotDir> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let record = Record {
            meta: meta.clone(),
            dir: name.clone(),
            manifest,
        };
        let bytes = codec::encode(&record).map_err(std::io::Error::other)?;
        self.raft
            .save_snapshot(bytes)
            .map_err(std::io::Error::other)?;
        for entry in std::fs::read_dir(&self.root)?.flatten() {
            let other = entry.file_name().to_string_lossy().into_owned();
            if other != name && other != "incoming" {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(SnapshotDir {
            dir: dir.to_path_buf(),
            manifest: Arc::new(record.manifest),
            received: false,
        })
    }

    /// The current snapshot, if any.
    pub(crate) fn current(&self) -> std::io::Result<Option<(SnapshotMeta, SnapshotDir)>> {
        let Some(bytes) = self.raft.snapshot().map_err(std::io::Error::other)? else {
            return Ok(None);
        };
        let record: Record = codec::decode(&bytes).map_err(std::io::Error::other)?;
        let dir = SnapshotDir {
            dir: self.root.join(&record.dir),
            manifest: Arc::new(record.manifest),
            received: false,
        };
        Ok(Some((record.meta, dir)))
    }

    /// Removes every partly received snapshot but `keep`.
    pub(crate) fn clear_incoming(&self, keep: Option<&Path>) {
        for entry in std::fs::read_dir(self.root.join("incoming"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if Some(entry.path().as_path()) != keep {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_catches_a_changed_or_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.sst"), b"alpha").expect("write");
        std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-1\n").expect("write");
        let manifest = Manifest::of_dir(dir.path()).expect("manifest");
        assert_eq!(manifest.files.len(), 2);
        assert_eq!(manifest.bytes(), 16);
        assert_eq!(manifest.verify(dir.path()), Ok(()));

        std::fs::write(dir.path().join("a.sst"), b"alphA").expect("write");
        let err = manifest.verify(dir.path()).expect_err("changed");
        assert!(err.contains("a.sst"), "{err}");
        std::fs::remove_file(dir.path().join("CURRENT")).expect("rm");
        assert!(manifest.verify(dir.path()).is_err());
    }
}

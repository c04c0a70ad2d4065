//! Sending a snapshot to a member that is far behind, in bounded chunks over the
//! p2p transport, resumably, every chunk and every file checksummed.
//!
//! ```text
//!  leader                                   member
//!  Offer{vote, meta, manifest} ──────────▶  stage in snapshots/incoming/<id>;
//!                              ◀──────────  Have{bytes already held per file}
//!  Chunk{id, file, offset, data, crc} ───▶  checked, written in place   (× n)
//!                              ◀──────────  Ack
//!  Done{vote, meta, id} ─────────────────▶  every file verified, fsynced,
//!                              ◀──────────  installed (openraft) → SnapshotResponse
//! ```
//!
//! Refused: a chunk of another snapshot (an old term's), out of order, damaged
//! (CRC) or past its file's end; a `Done` before every byte arrived or with a file
//! that does not match the manifest (that file is received again). The old chain
//! stays whole until the install switches to the new one.

use std::{os::unix::fs::FileExt, path::Path, sync::Arc};

use alloy_primitives::B256;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::{
    snapshot::{Manifest, SnapshotDir, Snapshots},
    types::SnapshotMeta,
};

/// One piece of one file of snapshot `id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chunk {
    pub(crate) id: B256,
    pub(crate) file: u32,
    pub(crate) offset: u64,
    pub(crate) data: Vec<u8>,
    /// CRC32 of `data`.
    pub(crate) crc: u32,
}

impl Chunk {
    pub fn new(id: B256, file: u32, offset: u64, data: Vec<u8>) -> Self {
        let crc = crc32fast::hash(&data);
        Self {
            id,
            file,
            offset,
            data,
            crc,
        }
    }
}

/// A snapshot being received.
#[derive(Debug)]
struct Incoming {
    id: B256,
    manifest: Arc<Manifest>,
    /// Bytes of each file held so far (they arrive in order).
    progress: Vec<u64>,
    dir: std::path::PathBuf,
}

/// The receiving side: at most one snapshot at a time.
#[derive(Debug)]
pub(crate) struct Receiver {
    snapshots: Snapshots,
    incoming: Mutex<Option<Incoming>>,
}

impl Receiver {
    pub(crate) fn new(snapshots: Snapshots) -> Self {
        Self {
            snapshots,
            incoming: Mutex::new(None),
        }
    }

    /// Starts (or resumes) receiving the snapshot `meta`/`manifest`; returns the
    /// bytes already held of each file.
    pub(crate) fn offer(
        &self,
        meta: &SnapshotMeta,
        manifest: Manifest,
    ) -> Result<Vec<u64>, String> {
        let id = manifest.id(meta);
        let mut incoming = self.incoming.lock();
        if let Some(current) = incoming.as_ref()
            && current.id == id
        {
            return Ok(current.progress.clone());
        }
        // Names come from a peer: each must be a plain file name inside the
        // staging directory.
        if let Some(file) = manifest.files.iter().find(|file| {
            std::path::Path::new(&file.name).file_name() != Some(std::ffi::OsStr::new(&file.name))
        }) {
            return Err(format!("refused a snapshot file named {:?}", file.name));
        }
        let dir = self.snapshots.incoming(&id);
        // A new snapshot supersedes any other half-received one; files of the same
        // snapshot left by an earlier attempt are resumed from their length.
        self.snapshots.clear_incoming(Some(&dir));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot stage the snapshot: {e}"))?;
        let progress = manifest
            .files
            .iter()
            .map(|file| {
                let path = dir.join(&file.name);
                // Every file exists from the start: an empty one gets no chunk.
                let staged = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .and_then(|f| f.metadata())
                    .map_err(|e| format!("cannot stage {}: {e}", path.display()))?;
                Ok(staged.len().min(file.len))
            })
            .collect::<Result<_, String>>()?;
        *incoming = Some(Incoming {
            id,
            manifest: Arc::new(manifest),
            progress,
            dir,
        });
        Ok(incoming
            .as_ref()
            .map(|i| i.progress.clone())
            .unwrap_or_default())
    }

    /// Writes one chunk in place, after checking it belongs where it claims.
    pub(crate) fn chunk(&self, chunk: &Chunk) -> Result<(), String> {
        let mut incoming = self.incoming.lock();
        let current = incoming
            .as_mut()
            .filter(|i| i.id == chunk.id)
            .ok_or_else(|| {
                format!(
                    "snapshot {} is not being received: offer it first",
                    chunk.id
                )
            })?;
        let index = chunk.file as usize;
        let file = current
            .manifest
            .files
            .get(index)
            .ok_or_else(|| format!("the snapshot has no file {index}"))?;
        let held = current.progress[index];
        let end = chunk
            .offset
            .checked_add(chunk.data.len() as u64)
            .filter(|end| *end <= file.len);
        let Some(end) = end else {
            return Err(format!(
                "chunk of {} bytes at {} ends past {}'s {} bytes",
                chunk.data.len(),
                chunk.offset,
                file.name,
                file.len
            ));
        };
        if end <= held {
            return Ok(()); // a chunk sent again: already written
        }
        if chunk.offset != held {
            return Err(format!(
                "chunk of {} at offset {}, expected {held}",
                file.name, chunk.offset
            ));
        }
        if crc32fast::hash(&chunk.data) != chunk.crc {
            return Err(format!("chunk of {} at {held} is damaged (CRC)", file.name));
        }
        let path = current.dir.join(&file.name);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        out.write_all_at(&chunk.data, chunk.offset)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        current.progress[index] = end;
        metrics::counter!("baton_snapshot_received_bytes_total").increment(chunk.data.len() as u64);
        Ok(())
    }

    /// Checks that snapshot `id` arrived whole and undamaged and makes it durable;
    /// returns it, ready to install. A damaged file is received again.
    pub(crate) fn complete(&self, id: &B256) -> Result<SnapshotDir, String> {
        let mut incoming = self.incoming.lock();
        let current = incoming
            .as_mut()
            .filter(|i| i.id == *id)
            .ok_or_else(|| format!("snapshot {id} is not being received"))?;
        let missing: u64 = current
            .manifest
            .files
            .iter()
            .zip(&current.progress)
            .fold(0, |missing, (file, held)| {
                missing.saturating_add(file.len - held)
            });
        if missing > 0 {
            return Err(format!("{missing} bytes of snapshot {id} have not arrived"));
        }
        if let Err(why) = current.manifest.verify(&current.dir) {
            // Receive the damaged file again.
            for (file, held) in current
                .manifest
                .files
                .iter()
                .zip(current.progress.iter_mut())
            {
                if why.starts_with(&format!("{}:", file.name)) {
                    *held = 0;
                    let _ = std::fs::remove_file(current.dir.join(&file.name));
                }
            }
            return Err(why);
        }
        sync_all(&current.dir, &current.manifest)
            .map_err(|e| format!("cannot fsync the snapshot: {e}"))?;
        let done = incoming
            .take()
            .unwrap_or_else(|| unreachable!("checked above"));
        Ok(SnapshotDir::received(done.dir, done.manifest))
    }
}

/// Flushes every file of a received snapshot, and its directory, to disk.
fn sync_all(dir: &Path, manifest: &Manifest) -> std::io::Result<()> {
    for file in &manifest.files {
        std::fs::File::open(dir.join(&file.name))?.sync_all()?;
    }
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::StoredMembership;

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: None,
            last_membership: StoredMembership::default(),
        }
    }

    /// A source snapshot directory and its manifest.
    fn source() -> (tempfile::TempDir, Manifest) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("000001.sst"), vec![7u8; 1000]).expect("write");
        std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-000002\n").expect("write");
        // An empty write-ahead log, as a checkpoint often has: it gets no chunk.
        std::fs::write(dir.path().join("000003.log"), b"").expect("write");
        let manifest = Manifest::of_dir(dir.path()).expect("manifest");
        (dir, manifest)
    }

    fn receiver() -> (tempfile::TempDir, Receiver) {
        let dir = tempfile::tempdir().expect("tempdir");
        let raft = baton_storage::RaftStore::open(&dir.path().join("raft")).expect("raft");
        let snapshots = Snapshots::new(dir.path().join("snapshots"), raft).expect("snapshots");
        (dir, Receiver::new(snapshots))
    }

    fn send(receiver: &Receiver, src: &Path, manifest: &Manifest, id: B256, size: usize) {
        for (index, file) in manifest.files.iter().enumerate() {
            let bytes = std::fs::read(src.join(&file.name)).expect("read");
            for (n, piece) in bytes.chunks(size).enumerate() {
                let chunk = Chunk::new(id, index as u32, (n * size) as u64, piece.to_vec());
                receiver.chunk(&chunk).expect("chunk");
            }
        }
    }

    #[test]
    fn a_snapshot_arrives_in_small_chunks_and_verifies() {
        let (src, manifest) = source();
        let (_dir, receiver) = receiver();
        let id = manifest.id(&meta());
        assert_eq!(
            receiver.offer(&meta(), manifest.clone()).expect("offer"),
            vec![0, 0, 0]
        );
        send(&receiver, src.path(), &manifest, id, 64);
        let snapshot = receiver.complete(&id).expect("whole");
        assert_eq!(snapshot.manifest.verify(&snapshot.dir), Ok(()));
    }

    #[test]
    fn an_interrupted_transfer_resumes_where_it_stopped() {
        let (src, manifest) = source();
        let (_dir, receiver) = receiver();
        let id = manifest.id(&meta());
        receiver.offer(&meta(), manifest.clone()).expect("offer");
        let sst = std::fs::read(src.path().join("000001.sst")).expect("read");
        receiver
            .chunk(&Chunk::new(id, 0, 0, sst[..300].to_vec()))
            .expect("first part");
        // The sender retries: the receiver says what it holds.
        assert_eq!(
            receiver.offer(&meta(), manifest.clone()).expect("offer"),
            vec![300, 0, 0]
        );
        let err = receiver.complete(&id).expect_err("not all there");
        assert!(err.contains("have not arrived"), "{err}");
    }

    #[test]
    fn damaged_truncated_replayed_and_foreign_chunks_are_refused() {
        let (src, manifest) = source();
        let (_dir, receiver) = receiver();
        let id = manifest.id(&meta());
        receiver.offer(&meta(), manifest.clone()).expect("offer");
        let sst = std::fs::read(src.path().join("000001.sst")).expect("read");

        let mut damaged = Chunk::new(id, 0, 0, sst[..100].to_vec());
        damaged.data[5] ^= 1;
        assert!(receiver.chunk(&damaged).expect_err("crc").contains("CRC"));
        let gap = Chunk::new(id, 0, 200, sst[200..300].to_vec());
        assert!(
            receiver
                .chunk(&gap)
                .expect_err("gap")
                .contains("expected 0")
        );
        let past_end = Chunk::new(id, 0, 0, vec![0; 2000]);
        assert!(
            receiver
                .chunk(&past_end)
                .expect_err("too long")
                .contains("past")
        );
        let foreign = Chunk::new(B256::repeat_byte(1), 0, 0, sst[..100].to_vec());
        assert!(
            receiver
                .chunk(&foreign)
                .expect_err("other snapshot")
                .contains("offer it first")
        );

        let good = Chunk::new(id, 0, 0, sst[..100].to_vec());
        receiver.chunk(&good).expect("good");
        receiver.chunk(&good).expect("a replayed chunk is harmless");
    }

    #[test]
    fn a_file_that_does_not_match_the_manifest_is_received_again() {
        let (src, manifest) = source();
        let (dir, receiver) = receiver();
        let id = manifest.id(&meta());
        receiver.offer(&meta(), manifest.clone()).expect("offer");
        send(&receiver, src.path(), &manifest, id, 256);
        // Damage the staged copy behind the receiver's back (a bad disk).
        let staged = dir
            .path()
            .join("snapshots/incoming")
            .join(id.to_string())
            .join("000001.sst");
        std::fs::write(&staged, vec![8u8; 1000]).expect("damage");
        let err = receiver.complete(&id).expect_err("damaged");
        assert!(err.contains("000001.sst"), "{err}");
        assert_eq!(
            receiver.offer(&meta(), manifest.clone()).expect("offer"),
            vec![0, 0, 16]
        );
        send(&receiver, src.path(), &manifest, id, 256);
        receiver.complete(&id).expect("whole now");
    }

    /// Found while writing the `member-message` fuzz target: with overflow checks
    /// on (the profile the devnet runs), both used to panic the node.
    #[test]
    fn offsets_and_lengths_near_u64_max_are_refused_not_overflowed() {
        let (_src, mut manifest) = source();
        let (_dir, receiver) = receiver();
        manifest.files[0].len = u64::MAX;
        manifest.files[1].len = u64::MAX;
        let id = manifest.id(&meta());
        receiver.offer(&meta(), manifest).expect("offer");
        let wraps = Chunk::new(id, 0, u64::MAX - 1, vec![1; 8]);
        let err = receiver.chunk(&wraps).expect_err("wraps around");
        assert!(err.contains("past"), "{err}");
        let err = receiver.complete(&id).expect_err("nothing arrived");
        assert!(err.contains("have not arrived"), "{err}");
    }

    #[test]
    fn a_manifest_naming_paths_outside_the_staging_directory_is_refused() {
        let (_src, mut manifest) = source();
        let (dir, receiver) = receiver();
        for name in ["../escape", "/etc/passwd", "a/b", ""] {
            manifest.files[0].name = name.to_string();
            let err = receiver.offer(&meta(), manifest.clone()).expect_err(name);
            assert!(err.contains("refused a snapshot file"), "{name}: {err}");
        }
        assert!(!dir.path().join("snapshots/escape").exists());
    }
}

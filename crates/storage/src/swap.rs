//! The chain database as a whole: a consistent copy of it (a checkpoint, for a
//! snapshot), and replacing it with another (installing a snapshot).
//!
//! ```text
//!  <data>/chain ──link──▶ <data>/chain.d/3        the live database
//!  install: move the new one to chain.d/4, open it, switch the link (one rename),
//!           serve it, delete chain.d/3
//! ```
//!
//! A crash before the link switch leaves the old chain; after it, the new one.
//! Directories the link does not name are leftovers of an interrupted install,
//! removed at the next open.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use rocksdb::checkpoint::Checkpoint;

use crate::{CHAIN_FAMILIES, StorageError, StorageResult, Store, open_db};

fn io_error(path: &Path, source: io::Error) -> StorageError {
    StorageError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `<path>.d`: where the versions of the database behind the link live.
fn versions(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".d");
    path.with_file_name(name)
}

/// Flushes a directory, so a rename or a new link in it survives a crash.
fn sync_dir(dir: &Path) -> StorageResult<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Points the link `path` at `target` (a name inside `<path>.d`) in one rename.
fn switch_link(path: &Path, target: &str) -> StorageResult<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let fresh = parent.join(format!(".{name}.switching"));
    let _ = std::fs::remove_file(&fresh);
    let versions_name = versions(path)
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    std::os::unix::fs::symlink(format!("{versions_name}/{target}"), &fresh)
        .map_err(|e| io_error(&fresh, e))?;
    std::fs::rename(&fresh, path).map_err(|e| io_error(path, e))?;
    sync_dir(parent)
}

/// The directory the database at `path` lives in, creating the link layout for a
/// new path and clearing leftovers of an interrupted install.
pub(crate) fn prepare(path: &Path) -> StorageResult<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let first = versions(path).join("0");
            std::fs::create_dir_all(&first).map_err(|e| io_error(&first, e))?;
            switch_link(path, "0")?;
            Ok(first)
        }
        Err(e) => Err(io_error(path, e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            let live = std::fs::canonicalize(path).map_err(|e| io_error(path, e))?;
            let dir = versions(path);
            for entry in std::fs::read_dir(&dir)
                .map_err(|e| io_error(&dir, e))?
                .flatten()
            {
                let stale = entry.path();
                if std::fs::canonicalize(&stale).ok().as_ref() != Some(&live) {
                    tracing::warn!(dir = %stale.display(), "removing a leftover of an interrupted snapshot install");
                    let _ = std::fs::remove_dir_all(&stale);
                }
            }
            Ok(live)
        }
        Ok(_) => Ok(path.to_path_buf()),
    }
}

impl Store {
    /// Writes a consistent copy of the chain as it is now into `to` (which must
    /// not exist): hard links to the immutable files, plus what the memtables hold.
    pub fn checkpoint(&self, to: &Path) -> StorageResult<()> {
        let db = self.db();
        Checkpoint::new(&db)?.create_checkpoint(to)?;
        Ok(())
    }

    /// Writes the memtables to files, so a checkpoint taken soon after has little
    /// to flush (call it off the apply path).
    pub fn flush(&self) -> StorageResult<()> {
        Ok(self.db().flush()?)
    }

    /// Replaces the whole chain with the complete database in `dir` (a checkpoint
    /// received in a snapshot), which is moved into place. Every clone of this
    /// store reads the new chain from then on.
    pub fn replace_with(&self, dir: &Path) -> StorageResult<()> {
        let link = self.path.as_path();
        let is_link = std::fs::symlink_metadata(link)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if !is_link {
            return Err(StorageError::Corrupt(format!(
                "the chain at {} was not opened through a link, so it cannot be replaced",
                link.display()
            )));
        }
        let versions = versions(link);
        let old = std::fs::canonicalize(link).map_err(|e| io_error(link, e))?;
        let next = std::fs::read_dir(&versions)
            .map_err(|e| io_error(&versions, e))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .map_or(0, |n| n + 1)
            .to_string();
        let target = versions.join(&next);
        std::fs::rename(dir, &target).map_err(|e| io_error(&target, e))?;
        sync_dir(&versions)?;
        let db = open_db(&target, &CHAIN_FAMILIES, self.memory_bytes)?;
        switch_link(link, &next)?;
        let replaced = std::mem::replace(&mut *self.db.write(), Arc::new(db));
        // Closed once the last operation holding it ends; its files go now (an
        // open file outlives its name).
        drop(replaced);
        if let Err(e) = std::fs::remove_dir_all(&old) {
            tracing::warn!(dir = %old.display(), error = %e, "could not remove the replaced chain");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use baton_primitives::{ChainSpec, SealedBlock};

    use super::*;

    fn block(number: u64) -> SealedBlock {
        let mut header = ChainSpec::dev().header;
        header.number = number;
        SealedBlock::new(header, Vec::new())
    }

    fn put(store: &Store, number: u64) {
        let mut write = store.chain_write();
        write.put_block(&block(number)).expect("put");
        write.commit().expect("commit");
    }

    #[test]
    fn an_installed_checkpoint_replaces_the_chain_for_every_clone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("chain")).expect("open");
        let reader = store.clone();
        put(&store, 1);
        let copy = dir.path().join("snapshot");
        store.checkpoint(&copy).expect("checkpoint");
        put(&store, 2);
        assert!(reader.block(2).expect("read").is_some());

        store.replace_with(&copy).expect("install");
        assert!(
            reader.block(1).expect("read").is_some(),
            "the checkpoint's chain"
        );
        assert!(
            reader.block(2).expect("read").is_none(),
            "later writes are gone"
        );
        assert!(!copy.exists(), "the checkpoint was moved into place");
        // Reopened, the link names the installed chain.
        drop((store, reader));
        let store = Store::open(&dir.path().join("chain")).expect("reopen");
        assert!(store.block(1).expect("read").is_some());
        assert!(store.block(2).expect("read").is_none());
    }

    /// A crash mid-install (the new database moved in, the link not yet switched)
    /// leaves the old chain, and the leftover is removed at the next open.
    #[test]
    fn an_interrupted_install_leaves_the_old_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chain");
        let store = Store::open(&path).expect("open");
        put(&store, 1);
        store
            .checkpoint(&dir.path().join("chain.d/9"))
            .expect("a half-installed copy");
        put(&store, 2);
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert!(
            store.block(2).expect("read").is_some(),
            "the old chain is whole"
        );
        assert!(
            !dir.path().join("chain.d/9").exists(),
            "the leftover is gone"
        );
    }

    #[test]
    fn a_plain_directory_cannot_be_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let copy = dir.path().join("copy");
        store.checkpoint(&copy).expect("checkpoint");
        assert!(store.replace_with(&copy).is_err());
    }
}

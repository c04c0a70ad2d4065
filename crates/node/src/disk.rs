//! Fail-stop on a full disk: a node whose database's filesystem runs short of free
//! space stops, and exits non-zero under supervision, before RocksDB fails a write
//! half-way through a block; so it never leads with a store that cannot take the
//! next entry, and its orchestrator sees why. A node is also refused at start-up
//! on a disk that is already that full.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    time::Duration,
};

/// How often the free space is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// The filesystem under `dir` has less free space than the node needs.
#[derive(Debug, thiserror::Error)]
#[error(
    "disk full: {} MiB free under {}, this node needs at least {} MiB (min_free_disk_mb)",
    free >> 20,
    dir.display(),
    min_free >> 20
)]
pub struct DiskFull {
    pub dir: PathBuf,
    pub free: u64,
    pub min_free: u64,
}

/// Bytes an unprivileged writer may still write on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs only writes the struct it is given; all-zero is a valid one.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and outlives the call; `stats` is writable.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Whether `dir`'s filesystem has at least `min_free` bytes free (0: no floor).
pub fn check(dir: &Path, min_free: u64) -> Result<u64, DiskFull> {
    let free = free_bytes(dir).unwrap_or(u64::MAX);
    if free < min_free {
        return Err(DiskFull {
            dir: dir.to_path_buf(),
            free,
            min_free,
        });
    }
    Ok(free)
}

/// Watches `dir`'s free space every second and returns (ending a critical task:
/// the node fail-stops) once it is under `min_free`.
pub(crate) async fn guard(dir: PathBuf, min_free: u64) {
    let mut every = tokio::time::interval(EVERY);
    loop {
        every.tick().await;
        match check(&dir, min_free) {
            Ok(free) => metrics::gauge!("baton_disk_free_bytes").set(free as f64),
            Err(full) => {
                tracing::error!("{full}: stopping");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_and_a_floor_above_it_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let free = free_bytes(dir.path()).expect("statvfs");
        assert!(free > 0);
        assert!(check(dir.path(), 0).is_ok());
        let full = check(dir.path(), u64::MAX).expect_err("no disk has that much");
        assert!(full.to_string().starts_with("disk full: "), "{full}");
        assert!(full.to_string().contains("min_free_disk_mb"), "{full}");
        assert!(free_bytes(Path::new("/no/such/dir")).is_err());
    }
}

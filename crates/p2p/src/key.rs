//! The node's persistent identity: its peer id must survive restarts, because
//! the other members allowlist it.

use std::{
    fs,
    io::{self, Write},
    path::Path,
};

use libp2p::identity::Keypair;

use crate::{P2pError, Result};

/// Loads the node's ed25519 key from `path` (the protobuf encoding of the
/// keypair), creating it with mode 0600 (and its parent directory) if missing.
/// A file that does not decode is [`P2pError::CorruptKey`], never replaced: a
/// new key would silently change the node's peer id.
pub fn load_or_create_key(path: &Path) -> Result<Keypair> {
    let key_file = |source| P2pError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    match fs::read(path) {
        Ok(bytes) => {
            Keypair::from_protobuf_encoding(&bytes).map_err(|source| P2pError::CorruptKey {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair.to_protobuf_encoding()?;
            write_private(path, &bytes).map_err(key_file)?;
            Ok(keypair)
        }
        Err(e) => Err(key_file(e)),
    }
}

/// Writes `bytes` readable by the owner only, via a temporary file and a rename
/// so a crash mid-write cannot leave a truncated key behind.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_key_is_reloaded_with_the_same_peer_id() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("nested/dir/node.key");
        let created = load_or_create_key(&path)?;
        let loaded = load_or_create_key(&path)?;
        assert_eq!(created.public().to_peer_id(), loaded.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        }
        Ok(())
    }

    #[test]
    fn corrupt_key_file_is_an_error_and_left_alone() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("node.key");
        fs::write(&path, b"not a keypair")?;
        let result = load_or_create_key(&path);
        assert!(
            matches!(result, Err(P2pError::CorruptKey { .. })),
            "{result:?}"
        );
        assert_eq!(fs::read(&path)?, b"not a keypair");
        Ok(())
    }
}

//! Storage errors.

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open database at {path}: {source}")]
    Open {
        path: String,
        source: rocksdb::Error,
    },
    #[error("cannot create data dir {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Codec(#[from] baton_primitives::codec::CodecError),
}

pub type StorageResult<T> = Result<T, StorageError>;

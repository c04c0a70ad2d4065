//! Where the chain lives and what it starts from: the data dir, the genesis, and
//! how often the state machine snapshots.

use std::path::PathBuf;

use baton_primitives::genesis::{DEV_ACCOUNTS, DEV_MNEMONIC};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The write buffers get a quarter of the limit. Below 16 MiB of them, the chain's
/// 13 families, each taking 1 MiB of buffer once written, would flush at almost
/// every write.
const MIN_DB_MEMORY_MB: u64 = 64;
/// 1 TiB: beyond any machine this runs on, and far from overflowing a shift.
const MAX_DB_MEMORY_MB: u64 = 1 << 20;

/// Data and genesis settings as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(default)]
pub struct DataArgs {
    /// Directory for this node's database and key.
    #[arg(long, env = "BATON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// geth-style genesis.json [default: the built-in dev genesis].
    #[arg(long, env = "BATON_GENESIS")]
    pub genesis: Option<PathBuf>,
    /// With the built-in dev genesis: fund this many accounts of the dev mnemonic
    /// [default: 10].
    #[arg(long)]
    pub dev_accounts: Option<u32>,
    /// The BIP-39 mnemonic of the dev accounts (the built-in genesis funds them;
    /// `--dev-unlocked` signs with them) [default: "test test … junk"].
    #[arg(long, env = "BATON_DEV_MNEMONIC")]
    pub dev_mnemonic: Option<String>,
    /// Sign with the dev accounts: `eth_accounts` lists them and `eth_sendTransaction`,
    /// `eth_sign`, `personal_sign`, `eth_signTransaction` and `eth_signTypedData_v4`
    /// work for them (anvil's behaviour). For local chains only: their keys are public.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub dev_unlocked: Option<bool>,
    /// Snapshot (and purge the log) once this many bytes of log were appended since
    /// the last snapshot; each node adds up to a quarter [default: 67108864, 64 MiB].
    #[arg(long)]
    pub snapshot_log_bytes: Option<u64>,
    /// Snapshot when the last one is this old and the log grew [default: 600].
    #[arg(long)]
    pub snapshot_max_age_secs: Option<u64>,
    /// Log entries kept behind a snapshot, so a member briefly behind catches up
    /// from the log [default: 1000].
    #[arg(long)]
    pub snapshot_keep_entries: Option<u64>,
    /// Largest chunk a snapshot is sent in, in bytes [default: 4194304, 4 MiB].
    #[arg(long)]
    pub snapshot_chunk_bytes: Option<usize>,
    /// Keep the state of only this many blocks behind the head (state at older
    /// blocks is refused) [default: every block, an archive].
    #[arg(long)]
    pub state_history_blocks: Option<u64>,
    /// Stop, and exit non-zero, when the database's filesystem has less than this
    /// many MiB free (refuse to start below it); 0 turns the check off
    /// [default: 256].
    #[arg(long)]
    pub min_free_disk_mb: Option<u64>,
    /// Memory the chain database may hold, in MiB: its block cache and its write
    /// buffers under one limit, so a node's memory stays flat as the chain grows
    /// [default: 256].
    #[arg(long)]
    pub db_memory_mb: Option<u64>,
}

/// Data and genesis settings, checked.
#[derive(Debug, Clone)]
pub struct DataConfig {
    pub data_dir: PathBuf,
    /// geth-style genesis file; the built-in dev genesis when absent.
    pub genesis: Option<PathBuf>,
    /// Accounts the built-in dev genesis funds (ignored with a genesis file), and
    /// how many are unlocked with `dev_unlocked`.
    pub dev_accounts: u32,
    pub dev_mnemonic: String,
    /// Whether the node signs for the dev accounts.
    pub dev_unlocked: bool,
    pub snapshots: baton_consensus::SnapshotPolicy,
    /// State kept for this many blocks behind the head; `None` keeps all.
    pub state_history_blocks: Option<u64>,
    /// Free space under the database below which the node stops (0: never).
    pub min_free_disk_bytes: u64,
    /// Memory the chain database may hold: block cache and write buffers.
    pub db_memory_bytes: usize,
}

impl DataArgs {
    pub fn resolve(&self) -> Result<DataConfig, ConfigError> {
        Ok(DataConfig {
            data_dir: self
                .data_dir
                .clone()
                .ok_or(ConfigError::Missing("data_dir"))?,
            genesis: self.genesis.clone(),
            dev_accounts: self.dev_accounts.unwrap_or(DEV_ACCOUNTS),
            dev_mnemonic: self
                .dev_mnemonic
                .clone()
                .unwrap_or_else(|| DEV_MNEMONIC.to_string()),
            dev_unlocked: self.dev_unlocked.unwrap_or(false),
            snapshots: baton_consensus::SnapshotPolicy {
                log_bytes: self.snapshot_log_bytes.unwrap_or(64 << 20).max(1),
                max_age: std::time::Duration::from_secs(self.snapshot_max_age_secs.unwrap_or(600)),
                keep_entries: self.snapshot_keep_entries.unwrap_or(1_000),
                chunk_bytes: match self.snapshot_chunk_bytes.unwrap_or(4 << 20) {
                    // Chunks ride in one p2p message, capped at 256 MiB.
                    bytes @ 1..=0x0800_0000 => bytes,
                    other => {
                        return Err(ConfigError::Invalid(format!(
                            "snapshot_chunk_bytes {other} must be in 1..=134217728"
                        )));
                    }
                },
            },
            state_history_blocks: match self.state_history_blocks {
                Some(0) => {
                    return Err(ConfigError::Invalid(
                        "state_history_blocks must be at least 1 (leave it out for an archive)"
                            .into(),
                    ));
                }
                other => other,
            },
            min_free_disk_bytes: self.min_free_disk_mb.unwrap_or(256).saturating_mul(1 << 20),
            db_memory_bytes: match self.db_memory_mb {
                None => baton_storage::DEFAULT_CHAIN_MEMORY_BYTES,
                Some(mb @ MIN_DB_MEMORY_MB..=MAX_DB_MEMORY_MB) => (mb as usize) << 20,
                Some(other) => {
                    return Err(ConfigError::Invalid(format!(
                        "db_memory_mb {other} must be in {MIN_DB_MEMORY_MB}..={MAX_DB_MEMORY_MB}"
                    )));
                }
            },
        })
    }
}

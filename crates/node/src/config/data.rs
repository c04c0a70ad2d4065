//! Where the chain lives and what it starts from: the data dir, the genesis, and
//! how often the state machine snapshots.

use std::path::PathBuf;

use baton_primitives::genesis::DEV_ACCOUNTS;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::ConfigError;

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
    /// Snapshot (and purge the log) every this many applied entries [default: 10000].
    #[arg(long)]
    pub snapshot_every: Option<u64>,
    /// Keep the state of only this many blocks behind the head (state at older
    /// blocks is refused) [default: every block, an archive].
    #[arg(long)]
    pub state_history_blocks: Option<u64>,
}

/// Data and genesis settings, checked.
#[derive(Debug, Clone)]
pub struct DataConfig {
    pub data_dir: PathBuf,
    /// geth-style genesis file; the built-in dev genesis when absent.
    pub genesis: Option<PathBuf>,
    /// Accounts the built-in dev genesis funds (ignored with a genesis file).
    pub dev_accounts: u32,
    pub snapshot_every: u64,
    /// State kept for this many blocks behind the head; `None` keeps all.
    pub state_history_blocks: Option<u64>,
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
            snapshot_every: self.snapshot_every.unwrap_or(10_000).max(1),
            state_history_blocks: match self.state_history_blocks {
                Some(0) => {
                    return Err(ConfigError::Invalid(
                        "state_history_blocks must be at least 1 (leave it out for an archive)"
                            .into(),
                    ));
                }
                other => other,
            },
        })
    }
}

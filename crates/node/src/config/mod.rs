//! A node's configuration: a TOML file and/or flags (flags win), checked as a whole.
//!
//! Each concern is one struct ([`ClusterArgs`], [`DataArgs`], [`TimingArgs`],
//! [`RpcArgs`], [`SequencerArgs`], [`FaultArgs`]) that declares its settings once:
//! the field (its doc is the flag's help; the same name is the TOML key), and in
//! its `resolve`, the default and the validation. The command line flattens them,
//! the file deserializes into them, and the rest of the node receives the checked
//! [`NodeConfig`].
//!
//! ```toml
//! id = 1
//! data_dir = "/var/lib/baton/node1"
//! rpc_addr = "0.0.0.0:8545"
//! p2p_addr = "/ip4/0.0.0.0/tcp/30301"
//! block_time_ms = 1000
//!
//! [[members]]
//! id = 1
//! peer_id = "12D3KooW…"          # `baton key --data-dir …` prints it
//! p2p_addr = "/ip4/10.0.0.1/tcp/30301"
//! rpc_url = "http://10.0.0.1:8545"
//! ```

mod cluster;
mod data;
mod fault;
mod fields;
mod rpc;
mod sequencer;
mod timing;

use std::path::Path;

use clap::Args;
use serde::{Deserialize, Serialize};

pub use cluster::{ClusterArgs, ClusterConfig, MemberEntry, ResolvedMember};
pub use data::{DataArgs, DataConfig};
pub use fault::{FaultArgs, FaultConfig};
pub use rpc::{RpcArgs, RpcConfig};
pub use sequencer::{SequencerArgs, SequencerSettings};
pub use timing::{Timing, TimingArgs};

/// A configuration that cannot run, with the reason in words an operator acts on.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the admin token file {path}: {why}")]
    AdminToken { path: String, why: String },
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {why}")]
    Parse { path: String, why: String },
    #[error("config file {path}: unknown setting `{key}`")]
    UnknownKey { path: String, key: String },
    #[error("missing setting `{0}` (give it in the config file or as a flag)")]
    Missing(&'static str),
    #[error("node id {id} is not one of the members ({members})")]
    UnknownMember { id: u64, members: String },
    #[error("member id {0} is listed twice")]
    DuplicateMember(u64),
    #[error("member {id}: {what}")]
    BadMember { id: u64, what: String },
    #[error("--member {0:?}: expected id=N,peer=PEER_ID,p2p=MULTIADDR,rpc=URL")]
    MemberFlag(String),
    #[error("timings contradict each other: {0}")]
    Timing(String),
    #[error("{0}")]
    Invalid(String),
}

/// Every setting of `baton node`, as a file or flags give them: all optional until
/// resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Serialize, Deserialize)]
pub struct NodeArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub timing: TimingArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub rpc: RpcArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub sequencer: SequencerArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub fault: FaultArgs,
}

impl NodeArgs {
    /// Reads a TOML file; a key no concern declares is an error (a typo must not
    /// silently fall back to a default).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse_toml(&text).map_err(|e| match e {
            ConfigError::Parse { why, .. } => ConfigError::Parse { path: shown, why },
            ConfigError::UnknownKey { key, .. } => ConfigError::UnknownKey { path: shown, key },
            other => other,
        })
    }

    fn parse_toml(text: &str) -> Result<Self, ConfigError> {
        let parse = |why: String| ConfigError::Parse {
            path: String::new(),
            why,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| parse(e.to_string()))?;
        let known = fields::known_keys().map_err(parse)?;
        if let Some(key) = table.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(ConfigError::UnknownKey {
                path: String::new(),
                key: key.clone(),
            });
        }
        table
            .try_into()
            .map_err(|e: toml::de::Error| parse(e.to_string()))
    }

    /// These settings where `flags` has none of its own: flags win.
    pub fn overridden_by(self, flags: NodeArgs) -> Result<NodeArgs, ConfigError> {
        let encode = |args: &NodeArgs| {
            toml::Table::try_from(args).map_err(|e| ConfigError::Invalid(e.to_string()))
        };
        let mut merged = encode(&self)?;
        // Unset settings are left out of the encoding, so only set flags replace.
        merged.extend(encode(&flags)?);
        merged
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))
    }

    /// The TOML text of these settings (what tools write for the nodes they start).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// Fills defaults and checks the whole configuration.
    pub fn resolve(self) -> Result<NodeConfig, ConfigError> {
        let timing = self.timing.resolve()?;
        let data = self.data.resolve()?;
        let cluster = self.cluster.resolve(&data.data_dir)?;
        Ok(NodeConfig {
            rpc: self.rpc.resolve()?,
            sequencer: self.sequencer.resolve(),
            fault: self.fault.resolve(),
            cluster,
            data,
            timing,
        })
    }
}

/// A complete, checked node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub cluster: ClusterConfig,
    pub data: DataConfig,
    pub timing: Timing,
    pub rpc: RpcConfig,
    pub sequencer: SequencerSettings,
    pub fault: FaultConfig,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const PEER_A: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
    const PEER_B: &str = "12D3KooWHdiAxVd8uMQR1hGWXccidmfCwLqcMpGwR6QcTP6QRMuD";

    pub(super) fn base() -> NodeArgs {
        let member = |text: String| text.parse::<MemberEntry>().expect("member");
        let mut args = NodeArgs::default();
        args.cluster.id = Some(1);
        args.cluster.p2p_addr = Some("/ip4/127.0.0.1/tcp/30301".into());
        args.cluster.members = vec![
            member(format!(
                "id=1,peer={PEER_A},p2p=/ip4/127.0.0.1/tcp/30301,rpc=http://127.0.0.1:8545"
            )),
            member(format!(
                "id=2,peer={PEER_B},p2p=/ip4/127.0.0.1/tcp/30302,rpc=http://127.0.0.1:8546"
            )),
        ];
        args.data.data_dir = Some("/tmp/x".into());
        args.rpc.rpc_addr = Some("127.0.0.1:8545".parse().expect("addr"));
        args
    }

    #[test]
    fn defaults_fill_in_and_validate() {
        let config = base().resolve().expect("valid");
        assert_eq!(config.timing.block_time, Duration::from_secs(1));
        assert_eq!(config.cluster.members.len(), 2);
    }

    #[test]
    fn flags_override_the_file() {
        let mut flags = NodeArgs::default();
        flags.timing.block_time_ms = Some(500);
        let merged = base().overridden_by(flags).expect("merge");
        assert_eq!(merged.timing.block_time_ms, Some(500));
        assert_eq!(merged.cluster.id, Some(1));
        assert_eq!(
            merged.cluster.members.len(),
            2,
            "no --member keeps the file's"
        );
    }

    #[test]
    fn a_file_round_trips_and_unknown_keys_are_an_error() {
        let text = base().to_toml().expect("toml");
        assert_eq!(NodeArgs::parse_toml(&text).expect("parse"), base());
        let err = NodeArgs::parse_toml("id = 1\nblock_tim_ms = 5").expect_err("typo");
        assert!(
            err.to_string().contains("unknown setting `block_tim_ms`"),
            "{err}"
        );
    }

    #[test]
    fn the_database_memory_is_bounded_both_ways() {
        let mut args = base();
        assert_eq!(
            args.clone().resolve().expect("valid").data.db_memory_bytes,
            baton_storage::DEFAULT_CHAIN_MEMORY_BYTES
        );
        args.data.db_memory_mb = Some(8);
        let err = args.clone().resolve().expect_err("too little");
        assert!(
            err.to_string().contains("db_memory_mb 8 must be in 64..="),
            "{err}"
        );
        args.data.db_memory_mb = Some(96);
        assert_eq!(
            args.resolve().expect("valid").data.db_memory_bytes,
            96 << 20
        );
    }

    #[test]
    fn a_missing_setting_is_named() {
        let mut args = base();
        args.rpc.rpc_addr = None;
        let err = args.resolve().expect_err("missing");
        assert!(err.to_string().contains("`rpc_addr`"), "{err}");
    }
}

//! A node's configuration: a TOML file and/or flags (flags win), checked as a whole.
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

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use alloy_primitives::Address;
use baton_p2p::{Multiaddr, PeerId};
use baton_primitives::{Member, NodeId, genesis::DEV_ACCOUNTS};
use serde::{Deserialize, Serialize};

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
    #[error("config file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("missing setting `{0}` (give it in the config file or as a flag)")]
    Missing(&'static str),
    #[error("node id {id} is not one of the members ({members})")]
    UnknownMember { id: NodeId, members: String },
    #[error("member id {0} is listed twice")]
    DuplicateMember(NodeId),
    #[error("member {id}: {what}")]
    BadMember { id: NodeId, what: String },
    #[error("--member {0:?}: expected id=N,peer=PEER_ID,p2p=MULTIADDR,rpc=URL")]
    MemberFlag(String),
    #[error("timings contradict each other: {0}")]
    Timing(String),
}

/// Settings as read from a file or flags; every field optional until merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub id: Option<NodeId>,
    pub data_dir: Option<PathBuf>,
    /// The node's libp2p key file (default: `node.key` in the data dir).
    pub node_key: Option<PathBuf>,
    pub genesis: Option<PathBuf>,
    pub rpc_addr: Option<SocketAddr>,
    pub p2p_addr: Option<String>,
    pub block_time_ms: Option<u64>,
    pub heartbeat_ms: Option<u64>,
    pub election_timeout_min_ms: Option<u64>,
    pub election_timeout_max_ms: Option<u64>,
    pub snapshot_every: Option<u64>,
    pub coinbase: Option<Address>,
    /// With the built-in dev genesis: how many mnemonic accounts it funds.
    pub dev_accounts: Option<u32>,
    /// Serve the fault-injection RPC (tests and the chaos harness only).
    pub fault_injection: Option<bool>,
    /// Never stand for election (a standby that only follows).
    pub standby_only: Option<bool>,
    /// Hand leadership to the next ready member after every N sealed blocks (0 = off).
    pub rotation_blocks: Option<u64>,
    /// Test-only fault: lead without ever producing a block.
    pub fault_no_produce: Option<bool>,
    /// File holding the bearer token the admin (`conductor_` writes) methods require.
    pub admin_token_file: Option<PathBuf>,
    /// Join a running cluster (the leader adds this node) instead of founding one.
    pub join: Option<bool>,
    #[serde(default)]
    pub members: Vec<MemberEntry>,
}

/// One `[[members]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    pub id: NodeId,
    pub peer_id: String,
    pub p2p_addr: String,
    pub rpc_url: String,
}

impl FromStr for MemberEntry {
    type Err = ConfigError;

    /// `id=2,peer=12D3…,p2p=/ip4/127.0.0.1/tcp/30302,rpc=http://127.0.0.1:8546`
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::MemberFlag(s.to_string());
        let mut fields = BTreeMap::new();
        for part in s.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(bad)?;
            fields.insert(key.trim(), value.trim().to_string());
        }
        let mut take = |key| fields.remove(key).ok_or_else(bad);
        let entry = Self {
            id: take("id")?.parse().map_err(|_| bad())?,
            peer_id: take("peer")?,
            p2p_addr: take("p2p")?,
            rpc_url: take("rpc")?,
        };
        if fields.is_empty() {
            Ok(entry)
        } else {
            Err(bad())
        }
    }
}

impl ConfigFile {
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: shown,
            source,
        })
    }

    /// `other`'s settings where it has them, ours elsewhere.
    pub fn overridden_by(self, other: ConfigFile) -> ConfigFile {
        ConfigFile {
            id: other.id.or(self.id),
            data_dir: other.data_dir.or(self.data_dir),
            node_key: other.node_key.or(self.node_key),
            genesis: other.genesis.or(self.genesis),
            rpc_addr: other.rpc_addr.or(self.rpc_addr),
            p2p_addr: other.p2p_addr.or(self.p2p_addr),
            block_time_ms: other.block_time_ms.or(self.block_time_ms),
            heartbeat_ms: other.heartbeat_ms.or(self.heartbeat_ms),
            election_timeout_min_ms: other
                .election_timeout_min_ms
                .or(self.election_timeout_min_ms),
            election_timeout_max_ms: other
                .election_timeout_max_ms
                .or(self.election_timeout_max_ms),
            snapshot_every: other.snapshot_every.or(self.snapshot_every),
            coinbase: other.coinbase.or(self.coinbase),
            dev_accounts: other.dev_accounts.or(self.dev_accounts),
            fault_injection: other.fault_injection.or(self.fault_injection),
            standby_only: other.standby_only.or(self.standby_only),
            rotation_blocks: other.rotation_blocks.or(self.rotation_blocks),
            fault_no_produce: other.fault_no_produce.or(self.fault_no_produce),
            admin_token_file: other.admin_token_file.or(self.admin_token_file),
            join: other.join.or(self.join),
            members: if other.members.is_empty() {
                self.members
            } else {
                other.members
            },
        }
    }

    /// Fills defaults and checks the whole configuration.
    pub fn resolve(self) -> Result<NodeConfig, ConfigError> {
        let timing = Timing {
            block_time: Duration::from_millis(self.block_time_ms.unwrap_or(1_000)),
            heartbeat: Duration::from_millis(self.heartbeat_ms.unwrap_or(50)),
            election_timeout_min: Duration::from_millis(
                self.election_timeout_min_ms.unwrap_or(150),
            ),
            election_timeout_max: Duration::from_millis(
                self.election_timeout_max_ms.unwrap_or(300),
            ),
        };
        timing.validate()?;
        let id = self.id.ok_or(ConfigError::Missing("id"))?;
        let members = resolve_members(self.members)?;
        if !members.contains_key(&id) {
            return Err(ConfigError::UnknownMember {
                id,
                members: members
                    .keys()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let p2p_addr = self
            .p2p_addr
            .ok_or(ConfigError::Missing("p2p_addr"))?
            .parse::<Multiaddr>()
            .map_err(|e| ConfigError::BadMember {
                id,
                what: format!("p2p_addr: {e}"),
            })?;
        let data_dir = self.data_dir.ok_or(ConfigError::Missing("data_dir"))?;
        Ok(NodeConfig {
            id,
            node_key: self.node_key.unwrap_or_else(|| data_dir.join("node.key")),
            data_dir,
            genesis: self.genesis,
            rpc_addr: self.rpc_addr.ok_or(ConfigError::Missing("rpc_addr"))?,
            p2p_addr,
            timing,
            snapshot_every: self.snapshot_every.unwrap_or(10_000).max(1),
            coinbase: self.coinbase.unwrap_or(Address::ZERO),
            dev_accounts: self.dev_accounts.unwrap_or(DEV_ACCOUNTS),
            fault_injection: self.fault_injection.unwrap_or(false),
            standby_only: self.standby_only.unwrap_or(false),
            rotation_blocks: self.rotation_blocks.unwrap_or(0),
            fault_no_produce: self.fault_no_produce.unwrap_or(false),
            admin_token: self
                .admin_token_file
                .as_deref()
                .map(read_token)
                .transpose()?,
            join: self.join.unwrap_or(false),
            members,
        })
    }
}

/// The admin token in `path`: its first line, which must hold at least 16
/// characters (a guessable token would open the cluster to anyone who can reach RPC).
fn read_token(path: &std::path::Path) -> Result<String, ConfigError> {
    let bad = |why: String| ConfigError::AdminToken {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < 16 {
        return Err(bad(format!(
            "the token is {} characters; use at least 16",
            token.len()
        )));
    }
    Ok(token)
}

/// A member as the node uses it: parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMember {
    pub peer_id: PeerId,
    pub p2p_addr: Multiaddr,
    pub member: Member,
}

fn resolve_members(
    entries: Vec<MemberEntry>,
) -> Result<BTreeMap<NodeId, ResolvedMember>, ConfigError> {
    if entries.is_empty() {
        return Err(ConfigError::Missing("members"));
    }
    let mut members = BTreeMap::new();
    for entry in entries {
        let id = entry.id;
        let bad = |what: String| ConfigError::BadMember { id, what };
        let peer_id: PeerId = entry
            .peer_id
            .parse()
            .map_err(|e| bad(format!("peer_id {:?}: {e}", entry.peer_id)))?;
        let p2p_addr: Multiaddr = entry
            .p2p_addr
            .parse()
            .map_err(|e| bad(format!("p2p_addr {:?}: {e}", entry.p2p_addr)))?;
        if !(entry.rpc_url.starts_with("http://") || entry.rpc_url.starts_with("https://")) {
            return Err(bad(format!(
                "rpc_url {:?} is not an http(s) URL",
                entry.rpc_url
            )));
        }
        let resolved = ResolvedMember {
            peer_id,
            p2p_addr,
            member: Member {
                peer_id: entry.peer_id,
                p2p_addr: entry.p2p_addr,
                rpc_url: entry.rpc_url,
            },
        };
        if members
            .values()
            .any(|m: &ResolvedMember| m.peer_id == resolved.peer_id)
        {
            return Err(bad(format!(
                "peer id {peer_id} belongs to another member too"
            )));
        }
        if members.insert(id, resolved).is_some() {
            return Err(ConfigError::DuplicateMember(id));
        }
    }
    Ok(members)
}

/// Block and Raft timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub block_time: Duration,
    pub heartbeat: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
}

impl Timing {
    /// heartbeat < election min < election max < 3 × block time (the stall bound:
    /// an election must fit inside the time after which a leader is called stalled).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ms = |d: Duration| d.as_millis();
        let fail = |what: String| Err(ConfigError::Timing(what));
        if ms(self.block_time) < 50 {
            return fail(format!(
                "block time {}ms is below 50ms",
                ms(self.block_time)
            ));
        }
        if ms(self.heartbeat) == 0 || self.heartbeat >= self.election_timeout_min {
            return fail(format!(
                "heartbeat {}ms must be above 0 and below the election timeout minimum {}ms",
                ms(self.heartbeat),
                ms(self.election_timeout_min)
            ));
        }
        if self.election_timeout_min >= self.election_timeout_max {
            return fail(format!(
                "election timeout minimum {}ms must be below its maximum {}ms",
                ms(self.election_timeout_min),
                ms(self.election_timeout_max)
            ));
        }
        if self.election_timeout_max >= self.block_time * 3 {
            return fail(format!(
                "election timeout maximum {}ms must be below 3 x block time ({}ms)",
                ms(self.election_timeout_max),
                ms(self.block_time * 3)
            ));
        }
        Ok(())
    }
}

/// A complete, checked node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    pub data_dir: PathBuf,
    /// The libp2p key file; created there when missing.
    pub node_key: PathBuf,
    /// geth-style genesis file; the built-in dev genesis when absent.
    pub genesis: Option<PathBuf>,
    pub rpc_addr: SocketAddr,
    pub p2p_addr: Multiaddr,
    pub timing: Timing,
    pub snapshot_every: u64,
    pub coinbase: Address,
    /// Accounts the built-in dev genesis funds (ignored with a genesis file).
    pub dev_accounts: u32,
    /// Serves `baton_faultPartition`; never set in production.
    pub fault_injection: bool,
    /// Never stands for election.
    pub standby_only: bool,
    /// Hands leadership on after every this many sealed blocks (0 = never).
    pub rotation_blocks: u64,
    /// Leads without producing (a test-only fault).
    pub fault_no_produce: bool,
    /// The admin bearer token; admin methods are off without one.
    pub admin_token: Option<String>,
    /// Joins a running cluster instead of founding one.
    pub join: bool,
    pub members: BTreeMap<NodeId, ResolvedMember>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER_A: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
    const PEER_B: &str = "12D3KooWHdiAxVd8uMQR1hGWXccidmfCwLqcMpGwR6QcTP6QRMuD";

    fn base() -> ConfigFile {
        ConfigFile {
            id: Some(1),
            data_dir: Some("/tmp/x".into()),
            rpc_addr: Some("127.0.0.1:8545".parse().expect("addr")),
            p2p_addr: Some("/ip4/127.0.0.1/tcp/30301".into()),
            members: vec![
                format!(
                    "id=1,peer={PEER_A},p2p=/ip4/127.0.0.1/tcp/30301,rpc=http://127.0.0.1:8545"
                )
                .parse()
                .expect("member"),
                format!(
                    "id=2,peer={PEER_B},p2p=/ip4/127.0.0.1/tcp/30302,rpc=http://127.0.0.1:8546"
                )
                .parse()
                .expect("member"),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_in_and_validate() {
        let config = base().resolve().expect("valid");
        assert_eq!(config.timing.block_time, Duration::from_secs(1));
        assert_eq!(config.members.len(), 2);
    }

    #[test]
    fn an_unknown_member_id_is_refused() {
        let mut file = base();
        file.id = Some(9);
        let err = file.resolve().expect_err("unknown id");
        assert!(
            err.to_string()
                .contains("node id 9 is not one of the members (1, 2)"),
            "{err}"
        );
    }

    #[test]
    fn contradictory_timings_are_refused() {
        let mut file = base();
        file.heartbeat_ms = Some(400);
        assert!(matches!(file.resolve(), Err(ConfigError::Timing(_))));

        let mut file = base();
        file.election_timeout_min_ms = Some(300);
        file.election_timeout_max_ms = Some(200);
        assert!(matches!(file.resolve(), Err(ConfigError::Timing(_))));

        let mut file = base();
        file.block_time_ms = Some(100);
        assert!(matches!(file.resolve(), Err(ConfigError::Timing(_))));
    }

    #[test]
    fn bad_members_are_refused() {
        assert!("id=1,peer=x".parse::<MemberEntry>().is_err());
        assert!(
            "id=1,peer=a,p2p=b,rpc=c,extra=d"
                .parse::<MemberEntry>()
                .is_err()
        );

        let mut file = base();
        file.members[1].peer_id = PEER_A.into();
        assert!(
            file.resolve()
                .expect_err("dup peer")
                .to_string()
                .contains("belongs to another member")
        );

        let mut file = base();
        file.members[1].id = 1;
        assert!(matches!(
            file.resolve(),
            Err(ConfigError::DuplicateMember(1))
        ));

        let mut file = base();
        file.members[0].peer_id = "not-a-peer".into();
        assert!(
            file.resolve()
                .expect_err("bad peer")
                .to_string()
                .contains("peer_id")
        );
    }

    #[test]
    fn flags_override_the_file() {
        let flags = ConfigFile {
            block_time_ms: Some(500),
            ..Default::default()
        };
        let merged = base().overridden_by(flags);
        assert_eq!(merged.block_time_ms, Some(500));
        assert_eq!(merged.id, Some(1));
    }

    #[test]
    fn the_node_key_lives_in_the_data_dir_unless_given() {
        let default = base().resolve().expect("valid");
        assert_eq!(default.node_key, PathBuf::from("/tmp/x/node.key"));
        let given = base()
            .overridden_by(ConfigFile {
                node_key: Some("/etc/baton/keys/node1.key".into()),
                ..Default::default()
            })
            .resolve()
            .expect("valid");
        assert_eq!(given.node_key, PathBuf::from("/etc/baton/keys/node1.key"));
    }

    #[test]
    fn the_admin_token_file_must_hold_a_long_enough_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let with_token = |text: &str| {
            let path = dir.path().join("token");
            std::fs::write(&path, text).expect("write");
            base()
                .overridden_by(ConfigFile {
                    admin_token_file: Some(path),
                    ..Default::default()
                })
                .resolve()
        };
        let config = with_token("0123456789abcdef-secret\n").expect("valid");
        assert_eq!(
            config.admin_token.as_deref(),
            Some("0123456789abcdef-secret")
        );
        let short = with_token("hunter2").expect_err("too short").to_string();
        assert!(short.contains("at least 16"), "{short}");
        let missing = base()
            .overridden_by(ConfigFile {
                admin_token_file: Some(dir.path().join("absent")),
                ..Default::default()
            })
            .resolve()
            .expect_err("missing")
            .to_string();
        assert!(
            missing.contains("cannot read the admin token file"),
            "{missing}"
        );
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        assert!(toml::from_str::<ConfigFile>("id = 1\nblock_tim_ms = 5").is_err());
    }
}

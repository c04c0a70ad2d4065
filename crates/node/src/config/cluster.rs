//! Who this node is and who its fellow members are: the id, the member list (the
//! p2p allowlist and where to dial), the p2p listen address, the node key, and
//! whether it founds the cluster or joins a running one.

use std::{collections::BTreeMap, path::Path, path::PathBuf, str::FromStr};

use baton_p2p::{Multiaddr, PeerId};
use baton_primitives::{Member, NodeId};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Cluster membership as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterArgs {
    /// This node's member id.
    #[arg(long, env = "BATON_ID")]
    pub id: Option<NodeId>,
    /// libp2p listen multiaddr, e.g. /ip4/0.0.0.0/tcp/30301.
    #[arg(long, env = "BATON_P2P_ADDR")]
    pub p2p_addr: Option<String>,
    /// The node's libp2p key file [default: node.key in the data dir].
    #[arg(long, env = "BATON_NODE_KEY")]
    pub node_key: Option<PathBuf>,
    /// Join a running cluster: do not found one; wait for the leader to add this
    /// node (conductor_addServerAsNonvoter).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub join: Option<bool>,
    /// A member: id=N,peer=PEER_ID,p2p=MULTIADDR,rpc=URL (repeat for each; replaces
    /// the file's list).
    #[arg(long = "member")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberEntry>,
}

/// One `[[members]]` table, or one `--member` flag.
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

/// A member as the node uses it: parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMember {
    pub peer_id: PeerId,
    pub p2p_addr: Multiaddr,
    pub member: Member,
}

impl ResolvedMember {
    /// Parses what a member publishes about itself (config, or a membership entry).
    pub fn parse(id: NodeId, member: Member) -> Result<Self, ConfigError> {
        let bad = |what: String| ConfigError::BadMember { id, what };
        let (peer_id, p2p_addr) = baton_p2p::parse_peer(&member.peer_id, &member.p2p_addr)
            .map_err(|e| bad(e.to_string()))?;
        if !(member.rpc_url.starts_with("http://") || member.rpc_url.starts_with("https://")) {
            return Err(bad(format!(
                "rpc_url {:?} is not an http(s) URL",
                member.rpc_url
            )));
        }
        Ok(Self {
            peer_id,
            p2p_addr,
            member,
        })
    }
}

/// Cluster membership, checked.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub id: NodeId,
    pub members: BTreeMap<NodeId, ResolvedMember>,
    pub p2p_addr: Multiaddr,
    /// The libp2p key file; created there when missing.
    pub node_key: PathBuf,
    /// Joins a running cluster instead of founding one.
    pub join: bool,
}

impl ClusterConfig {
    /// Every member but this node.
    pub fn peers(&self) -> impl Iterator<Item = (NodeId, &ResolvedMember)> {
        self.members
            .iter()
            .filter(|(id, _)| **id != self.id)
            .map(|(id, member)| (*id, member))
    }
}

impl ClusterArgs {
    pub fn resolve(&self, data_dir: &Path) -> Result<ClusterConfig, ConfigError> {
        let id = self.id.ok_or(ConfigError::Missing("id"))?;
        let members = resolve_members(&self.members)?;
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
            .as_deref()
            .ok_or(ConfigError::Missing("p2p_addr"))?
            .parse::<Multiaddr>()
            .map_err(|e| ConfigError::BadMember {
                id,
                what: format!("p2p_addr: {e}"),
            })?;
        Ok(ClusterConfig {
            id,
            members,
            p2p_addr,
            node_key: self
                .node_key
                .clone()
                .unwrap_or_else(|| data_dir.join("node.key")),
            join: self.join.unwrap_or(false),
        })
    }
}

fn resolve_members(
    entries: &[MemberEntry],
) -> Result<BTreeMap<NodeId, ResolvedMember>, ConfigError> {
    if entries.is_empty() {
        return Err(ConfigError::Missing("members"));
    }
    let mut members = BTreeMap::new();
    for entry in entries {
        let id = entry.id;
        let resolved = ResolvedMember::parse(
            id,
            Member {
                peer_id: entry.peer_id.clone(),
                p2p_addr: entry.p2p_addr.clone(),
                rpc_url: entry.rpc_url.clone(),
            },
        )?;
        if members
            .values()
            .any(|m: &ResolvedMember| m.peer_id == resolved.peer_id)
        {
            return Err(ConfigError::BadMember {
                id,
                what: format!("peer id {} belongs to another member too", resolved.peer_id),
            });
        }
        if members.insert(id, resolved).is_some() {
            return Err(ConfigError::DuplicateMember(id));
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::base;

    const PEER_A: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

    #[test]
    fn an_unknown_member_id_is_refused() {
        let mut args = base();
        args.cluster.id = Some(9);
        let err = args.resolve().expect_err("unknown id");
        assert!(
            err.to_string()
                .contains("node id 9 is not one of the members (1, 2)"),
            "{err}"
        );
    }

    #[test]
    fn bad_members_are_refused() {
        assert!("id=1,peer=x".parse::<MemberEntry>().is_err());
        assert!(
            "id=1,peer=a,p2p=b,rpc=c,extra=d"
                .parse::<MemberEntry>()
                .is_err()
        );

        let mut args = base();
        args.cluster.members[1].peer_id = PEER_A.into();
        let err = args.resolve().expect_err("dup peer").to_string();
        assert!(err.contains("belongs to another member"), "{err}");

        let mut args = base();
        args.cluster.members[1].id = 1;
        assert!(matches!(
            args.resolve(),
            Err(ConfigError::DuplicateMember(1))
        ));

        let mut args = base();
        args.cluster.members[0].peer_id = "not-a-peer".into();
        let err = args.resolve().expect_err("bad peer").to_string();
        assert!(err.contains("peer id"), "{err}");
    }

    #[test]
    fn the_node_key_lives_in_the_data_dir_unless_given() {
        let default = base().resolve().expect("valid");
        assert_eq!(default.cluster.node_key, PathBuf::from("/tmp/x/node.key"));
        let mut args = base();
        args.cluster.node_key = Some("/etc/baton/keys/node1.key".into());
        let given = args.resolve().expect("valid");
        assert_eq!(
            given.cluster.node_key,
            PathBuf::from("/etc/baton/keys/node1.key")
        );
    }
}

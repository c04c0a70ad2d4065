//! Cluster members: the Raft node id and what a member tells the others about itself.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A member's Raft id; unique within a cluster, chosen by the operator.
pub type NodeId = u64;

/// What the cluster knows about one member. Stored in Raft membership entries, so
/// every node (and every RPC answer about the cluster) sees the same addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// libp2p peer id (base58), derived from the key in the member's data dir.
    pub peer_id: String,
    /// libp2p multiaddr other members dial, e.g. `/ip4/127.0.0.1/tcp/30301`.
    pub p2p_addr: String,
    /// JSON-RPC URL wallets and operators use, e.g. `http://127.0.0.1:8545`.
    pub rpc_url: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.rpc_url, self.p2p_addr)
    }
}

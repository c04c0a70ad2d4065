//! baton-fuzz: what a stranger (or a member gone wrong) can send baton, as
//! functions of bytes that must never panic a node. The same [`Target`]s are the
//! bodies of the coverage-guided cargo-fuzz targets under `fuzz/` and of the fuzz
//! smoke ([`smoke`]) the test suite runs on stable Rust.
//!
//! ```text
//!  bytes ──▶ Target::run ──▶ rpc            every JSON-RPC method, params built from the bytes
//!                        ├──▶ raw-tx         eth_sendRawTransaction, then execution on an open block
//!                        ├──▶ log-entry      a Raft log entry, decoded and applied as a follower does
//!                        ├──▶ member-message a member's p2p message (Raft's, a call, a snapshot chunk)
//!                        ├──▶ stranger       bytes on a fresh TCP connection to the p2p port
//!                        ├──▶ genesis        a genesis.json, parsed and streamed as a node reads it
//!                        └──▶ config         a node's TOML config, parsed and checked
//! ```
//!
//! The RPC targets call a one-node cluster in this process through its methods
//! (no socket); any panic anywhere in the process, in a node's own tasks too, is a
//! finding ([`panics`]).

mod harness;
mod json;
mod seeds;
mod smoke;

use alloy_consensus::TxEnvelope;
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::Bytes;
use baton_primitives::{ChainSpec, SequencerEntry, codec};

pub use harness::panics;
pub use smoke::{Budget, Smoked, smoke};

/// One kind of input baton takes from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Rpc,
    RawTx,
    LogEntry,
    Genesis,
    Config,
    MemberMessage,
    Stranger,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rpc => "rpc",
            Self::RawTx => "raw-tx",
            Self::LogEntry => "log-entry",
            Self::Genesis => "genesis",
            Self::Config => "config",
            Self::MemberMessage => "member-message",
            Self::Stranger => "stranger",
        }
    }

    /// Feeds `data` to what this target stands for; returns normally whatever the
    /// bytes, or the process has a bug.
    pub fn run(self, data: &[u8]) {
        match self {
            Self::Rpc => harness::get().rpc(data),
            Self::RawTx => raw_tx(data),
            Self::LogEntry => log_entry(data),
            Self::Genesis => genesis(data),
            Self::Config => config(data),
            Self::MemberMessage => harness::get().member_message(data),
            Self::Stranger => harness::get().stranger(data),
        }
    }

    /// Well-formed inputs to start mutating from.
    pub fn seeds(self) -> Vec<Vec<u8>> {
        match self {
            Self::Rpc => seeds::rpc(),
            Self::RawTx => seeds::raw_txs(),
            Self::LogEntry => seeds::log_entries(&harness::get().genesis()),
            Self::Genesis => vec![seeds::GENESIS.as_bytes().to_vec()],
            Self::Config => vec![seeds::config()],
            Self::MemberMessage => seeds::member_messages(),
            Self::Stranger => seeds::stranger(),
        }
    }
}

/// `data` as a raw transaction: sent to the node as a wallet sends it, then, if it
/// decodes, executed on an open block from a funded account whatever its
/// signature says (so the EVM runs what the bytes hold).
fn raw_tx(data: &[u8]) {
    let harness = harness::get();
    harness.send_raw(data);
    if TxEnvelope::decode_2718(&mut &data[..]).is_ok() {
        harness.execute(Bytes::copy_from_slice(data));
    }
}

/// `data` as a Raft log entry, applied to the scratch chain as a follower would.
fn log_entry(data: &[u8]) {
    if let Ok(entry) = codec::decode::<SequencerEntry>(data) {
        harness::get().apply(&entry);
    }
}

/// `data` as a `genesis.json`: parsed as `--genesis FILE` is, accounts streamed.
fn genesis(data: &[u8]) {
    let file = harness::scratch_file("genesis.json", data);
    if let Ok(spec) = ChainSpec::from_file(&file) {
        let _ = spec.for_each_account(|_, _| Ok(()));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ChainSpec::from_json(text);
    }
}

/// `data` as a node's config file: loaded and resolved as `baton node --config`.
fn config(data: &[u8]) {
    let file = harness::scratch_file("node.toml", data);
    if let Ok(args) = baton_node::config::NodeArgs::load(&file) {
        let _ = args.resolve();
    }
}

//! What the chain runs and what this node holds, for tools and RPC routers:
//! `eth_config` (EIP-7910: the fork in force, its precompiles and system
//! contracts) and `eth_capabilities` (the oldest block each kind of data is served
//! from).
//!
//! baton runs one fork, Prague, from genesis on, with no fork scheduled: `next` and
//! `last` are null. Its blocks make no pre-block system calls (no beacon root, no
//! parent-hash history contract: an L2 sequencer has no beacon chain), so it lists
//! no system contracts.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, FixedBytes, U64};
use jsonrpsee::{core::RpcResult, proc_macros::rpc};
use serde::Serialize;

use crate::{EthHandler, internal};

/// The precompiles of Prague, by their EIP-7910 names.
const PRAGUE_PRECOMPILES: [(&str, u8); 17] = [
    ("ECREC", 0x01),
    ("SHA256", 0x02),
    ("RIPEMD160", 0x03),
    ("ID", 0x04),
    ("MODEXP", 0x05),
    ("BN254_ADD", 0x06),
    ("BN254_MUL", 0x07),
    ("BN254_PAIRING", 0x08),
    ("BLAKE2F", 0x09),
    ("KZG_POINT_EVALUATION", 0x0a),
    ("BLS12_G1ADD", 0x0b),
    ("BLS12_G1MSM", 0x0c),
    ("BLS12_G2ADD", 0x0d),
    ("BLS12_G2MSM", 0x0e),
    ("BLS12_PAIRING_CHECK", 0x0f),
    ("BLS12_MAP_FP_TO_G1", 0x10),
    ("BLS12_MAP_FP2_TO_G2", 0x11),
];

/// EIP-7691's blob schedule for Prague (blob transactions are refused here, but
/// the fee rule is the fork's).
const PRAGUE_BLOBS: BlobSchedule = BlobSchedule {
    base_fee_update_fraction: 5_007_716,
    max: 9,
    target: 6,
};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlobSchedule {
    base_fee_update_fraction: u64,
    max: u64,
    target: u64,
}

/// One fork's configuration (EIP-7910).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ForkConfig {
    activation_time: u64,
    blob_schedule: BlobSchedule,
    chain_id: U64,
    fork_id: FixedBytes<4>,
    precompiles: BTreeMap<&'static str, Address>,
    system_contracts: BTreeMap<&'static str, Address>,
}

/// `eth_config`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct ChainConfig {
    current: ForkConfig,
    next: Option<ForkConfig>,
    last: Option<ForkConfig>,
}

/// `eth_capabilities`'s answer: the head, and where each kind of data starts.
#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    head: Head,
    state: Resource,
    tx: Resource,
    logs: Resource,
    receipts: Resource,
    blocks: Resource,
    stateproofs: Resource,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Head {
    number: U64,
    hash: B256,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Resource {
    disabled: bool,
    oldest_block: U64,
    #[serde(skip_serializing_if = "Option::is_none")]
    delete_strategy: Option<Window>,
}

/// The only deletion baton does: state older than a window of blocks.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Window {
    #[serde(rename = "type")]
    kind: &'static str,
    retention_blocks: U64,
}

#[rpc(server)]
pub trait EthInfoApi {
    /// EIP-7910: the fork in force and the next one (none is scheduled).
    #[method(name = "eth_config")]
    fn config(&self) -> RpcResult<ChainConfig>;

    #[method(name = "eth_capabilities")]
    fn capabilities(&self) -> RpcResult<Capabilities>;
}

impl EthInfoApiServer for EthHandler {
    fn config(&self) -> RpcResult<ChainConfig> {
        let genesis = self
            .store
            .block(0)
            .map_err(internal)?
            .ok_or_else(|| internal("the genesis block is missing"))?;
        // EIP-6122 / EIP-2124: with every fork active at genesis the fork hash is
        // the CRC-32 of the genesis hash alone.
        let fork_id = FixedBytes(crc32fast::hash(genesis.hash.as_slice()).to_be_bytes());
        let precompiles = PRAGUE_PRECOMPILES
            .iter()
            .map(|(name, last)| (*name, Address::with_last_byte(*last)))
            .collect();
        Ok(ChainConfig {
            current: ForkConfig {
                activation_time: genesis.header.timestamp,
                blob_schedule: PRAGUE_BLOBS,
                chain_id: U64::from(self.chain_id),
                fork_id,
                precompiles,
                system_contracts: BTreeMap::new(),
            },
            next: None,
            last: None,
        })
    }

    fn capabilities(&self) -> RpcResult<Capabilities> {
        let head = self.consensus.chain().borrow().head.clone();
        let state_floor = self.store.history_floor().map_err(internal)?;
        let everything = Resource {
            disabled: false,
            oldest_block: U64::ZERO,
            delete_strategy: None,
        };
        let state = Resource {
            disabled: false,
            oldest_block: U64::from(state_floor),
            delete_strategy: self.state_history_blocks.map(|blocks| Window {
                kind: "window",
                retention_blocks: U64::from(blocks),
            }),
        };
        Ok(Capabilities {
            head: Head {
                number: U64::from(head.number()),
                hash: head.hash,
            },
            stateproofs: state.clone(),
            state,
            tx: everything.clone(),
            logs: everything.clone(),
            receipts: everything.clone(),
            blocks: everything,
        })
    }
}

//! `eth_`, `net_` and `web3_` methods over the applied chain.

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::{B256, U64, keccak256};
use alloy_rpc_types_eth::{Block, BlockTransactions, Header, Transaction};
use baton_primitives::SealedBlock;
use jsonrpsee::{core::RpcResult, proc_macros::rpc};

use crate::{RpcContext, internal};

#[rpc(server)]
pub trait EthApi {
    #[method(name = "eth_chainId")]
    fn chain_id(&self) -> RpcResult<U64>;

    #[method(name = "net_version")]
    fn net_version(&self) -> RpcResult<String>;

    #[method(name = "web3_clientVersion")]
    fn client_version(&self) -> RpcResult<String>;

    #[method(name = "eth_blockNumber")]
    fn block_number(&self) -> RpcResult<U64>;

    #[method(name = "eth_getBlockByNumber")]
    fn block_by_number(&self, number: BlockNumberOrTag, full: bool) -> RpcResult<Option<Block>>;

    #[method(name = "eth_getBlockByHash")]
    fn block_by_hash(&self, hash: B256, full: bool) -> RpcResult<Option<Block>>;

    #[method(name = "eth_getBlockTransactionCountByNumber")]
    fn block_transaction_count_by_number(&self, number: BlockNumberOrTag)
    -> RpcResult<Option<U64>>;

    #[method(name = "eth_getBlockTransactionCountByHash")]
    fn block_transaction_count_by_hash(&self, hash: B256) -> RpcResult<Option<U64>>;
}

impl RpcContext {
    fn head_number(&self) -> u64 {
        self.consensus.chain().borrow().head.number()
    }

    fn block(&self, number: u64) -> RpcResult<Option<Block>> {
        Ok(self.sealed_block(number)?.map(rpc_block))
    }

    fn sealed_block(&self, number: u64) -> RpcResult<Option<SealedBlock>> {
        self.store.block(number).map_err(internal)
    }

    /// The number a tag or number names; every tag but `earliest` is the head,
    /// because everything applied is committed by a quorum and final.
    fn resolve(&self, number: BlockNumberOrTag) -> u64 {
        match number {
            BlockNumberOrTag::Number(n) => n,
            BlockNumberOrTag::Earliest => 0,
            BlockNumberOrTag::Latest
            | BlockNumberOrTag::Pending
            | BlockNumberOrTag::Safe
            | BlockNumberOrTag::Finalized => self.head_number(),
        }
    }

    fn block_number_of(&self, hash: B256) -> RpcResult<Option<u64>> {
        self.store.block_number(hash).map_err(internal)
    }
}

/// The RPC shape of a sealed block, transactions as hashes.
fn rpc_block(block: SealedBlock) -> Block {
    let size = alloy_rlp::Encodable::length(&block.header)
        + block.txs.iter().map(|(raw, _)| raw.len()).sum::<usize>();
    let hashes = block.txs.iter().map(|(raw, _)| keccak256(raw)).collect();
    Block {
        header: Header {
            hash: block.hash,
            inner: block.header,
            total_difficulty: Some(Default::default()),
            size: Some(alloy_primitives::U256::from(size)),
        },
        uncles: Vec::new(),
        transactions: BlockTransactions::<Transaction>::Hashes(hashes),
        withdrawals: Some(Default::default()),
    }
}

impl EthApiServer for RpcContext {
    fn chain_id(&self) -> RpcResult<U64> {
        Ok(U64::from(self.chain_id))
    }

    fn net_version(&self) -> RpcResult<String> {
        Ok(self.chain_id.to_string())
    }

    fn client_version(&self) -> RpcResult<String> {
        Ok(self.client_version.clone())
    }

    fn block_number(&self) -> RpcResult<U64> {
        Ok(U64::from(self.head_number()))
    }

    fn block_by_number(&self, number: BlockNumberOrTag, _full: bool) -> RpcResult<Option<Block>> {
        self.block(self.resolve(number))
    }

    fn block_by_hash(&self, hash: B256, _full: bool) -> RpcResult<Option<Block>> {
        match self.block_number_of(hash)? {
            Some(number) => self.block(number),
            None => Ok(None),
        }
    }

    fn block_transaction_count_by_number(
        &self,
        number: BlockNumberOrTag,
    ) -> RpcResult<Option<U64>> {
        let block = self.sealed_block(self.resolve(number))?;
        Ok(block.map(|b| U64::from(b.txs.len())))
    }

    fn block_transaction_count_by_hash(&self, hash: B256) -> RpcResult<Option<U64>> {
        match self.block_number_of(hash)? {
            Some(number) => Ok(self.sealed_block(number)?.map(|b| U64::from(b.txs.len()))),
            None => Ok(None),
        }
    }
}

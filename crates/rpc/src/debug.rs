//! The `debug_` namespace: sealed data in its consensus encodings
//! (`debug_getRaw*`), and traces of sealed transactions, whole blocks and
//! messages (`debug_trace*`) on the RPC execution threads, within the call time
//! limit and a bound on the trace's size.

use alloy_consensus::{BlockBody, TxEnvelope};
use alloy_eips::{BlockId, BlockNumberOrTag, eip2718::Decodable2718};
use alloy_primitives::{B256, Bytes};
use alloy_rpc_types_eth::TransactionRequest;
use alloy_rpc_types_trace::geth::{
    GethDebugTracingCallOptions, GethDebugTracingOptions, GethTrace, TraceResult,
};
use baton_execution::{TraceError, trace_block, trace_call};
use baton_primitives::SealedBlock;
use jsonrpsee::{
    Extensions,
    core::{RpcResult, async_trait},
    proc_macros::rpc,
    types::ErrorObjectOwned,
};

use crate::{EthHandler, internal, pool::timed_out_error};

/// The spec's code for data this node does not have (`Resource not found`).
const NOT_FOUND: i32 = -32001;

/// Block access lists (EIP-7928) come with Amsterdam; baton runs Prague.
fn no_access_lists() -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        NOT_FOUND,
        "block access lists are not kept: this chain runs Prague, and EIP-7928 access \
         lists begin with Amsterdam",
        None::<()>,
    )
}

fn trace_error(error: TraceError) -> ErrorObjectOwned {
    match error {
        TraceError::Timeout => timed_out_error(),
        TraceError::State(e) => internal(e),
        other => ErrorObjectOwned::owned(-32000, other.to_string(), None::<()>),
    }
}

#[rpc(server)]
pub trait DebugApi {
    /// The RLP header of a sealed block.
    #[method(name = "debug_getRawHeader")]
    fn raw_header(&self, block: BlockId) -> RpcResult<Option<Bytes>>;

    /// The RLP block (header, transactions, no ommers, no withdrawals).
    #[method(name = "debug_getRawBlock")]
    fn raw_block(&self, block: BlockId) -> RpcResult<Option<Bytes>>;

    /// The EIP-2718 receipts of a sealed block.
    #[method(name = "debug_getRawReceipts")]
    fn raw_receipts(&self, block: BlockId) -> RpcResult<Option<Vec<Bytes>>>;

    /// The EIP-2718 bytes of a transaction (sealed or preconfirmed); empty for
    /// an unknown hash, as geth answers.
    #[method(name = "debug_getRawTransaction")]
    fn raw_transaction(&self, hash: B256) -> RpcResult<Bytes>;

    /// Blocks this node refused. None are kept: a node whose block differs from the
    /// leader's stops rather than keeps it (DESIGN invariant 4).
    #[method(name = "debug_getBadBlocks")]
    fn bad_blocks(&self) -> RpcResult<Vec<serde_json::Value>>;

    #[method(name = "debug_getRawBlockAccessList")]
    fn raw_block_access_list(&self, block: BlockId) -> RpcResult<Bytes>;

    #[method(name = "eth_getBlockAccessList")]
    fn block_access_list(&self, block: BlockId) -> RpcResult<Option<serde_json::Value>>;

    #[method(name = "debug_traceTransaction", with_extensions)]
    async fn trace_transaction(
        &self,
        hash: B256,
        options: Option<GethDebugTracingOptions>,
    ) -> RpcResult<GethTrace>;

    #[method(name = "debug_traceBlockByNumber", with_extensions)]
    async fn trace_block_by_number(
        &self,
        block: BlockNumberOrTag,
        options: Option<GethDebugTracingOptions>,
    ) -> RpcResult<Vec<TraceResult>>;

    #[method(name = "debug_traceBlockByHash", with_extensions)]
    async fn trace_block_by_hash(
        &self,
        hash: B256,
        options: Option<GethDebugTracingOptions>,
    ) -> RpcResult<Vec<TraceResult>>;

    /// A message as `eth_call` runs it, traced; with state and block overrides.
    #[method(name = "debug_traceCall", with_extensions)]
    async fn trace_call(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        options: Option<GethDebugTracingCallOptions>,
    ) -> RpcResult<GethTrace>;
}

impl EthHandler {
    /// The sealed block `block` names (`pending` names the head: the open block
    /// is not sealed).
    fn sealed_at(&self, block: BlockId) -> RpcResult<Option<SealedBlock>> {
        let number = match block {
            BlockId::Number(tag) => Some(self.resolve(tag)),
            BlockId::Hash(hash) => self.block_number_of(hash.block_hash)?,
        };
        match number {
            Some(number) => self.sealed_block(number),
            None => Ok(None),
        }
    }

    /// Traces the transactions of the sealed block `number` (only the one at
    /// `only`, when given) on an execution thread.
    async fn trace_sealed(
        &self,
        extensions: &Extensions,
        number: u64,
        only: Option<usize>,
        options: GethDebugTracingOptions,
    ) -> RpcResult<Option<Vec<TraceResult>>> {
        let Some(block) = self.sealed_block(number)? else {
            return Ok(None);
        };
        let (store, chain_id) = (self.store.clone(), self.chain_id);
        self.exec
            .run(extensions, move |deadline| {
                trace_block(&store, chain_id, &block, only, &options, deadline)
                    .map(Some)
                    .map_err(trace_error)
            })
            .await
    }
}

#[async_trait]
impl DebugApiServer for EthHandler {
    fn raw_header(&self, block: BlockId) -> RpcResult<Option<Bytes>> {
        Ok(self
            .sealed_at(block)?
            .map(|block| alloy_rlp::encode(&block.header).into()))
    }

    fn raw_block(&self, block: BlockId) -> RpcResult<Option<Bytes>> {
        let Some(block) = self.sealed_at(block)? else {
            return Ok(None);
        };
        let transactions = block
            .txs
            .iter()
            .map(|(raw, _)| TxEnvelope::decode_2718(&mut raw.as_ref()).map_err(internal))
            .collect::<RpcResult<Vec<_>>>()?;
        let block = alloy_consensus::Block {
            header: block.header,
            body: BlockBody {
                transactions,
                ommers: Vec::new(),
                withdrawals: Some(Default::default()),
            },
        };
        Ok(Some(alloy_rlp::encode(&block).into()))
    }

    fn raw_receipts(&self, block: BlockId) -> RpcResult<Option<Vec<Bytes>>> {
        let Some(block) = self.sealed_at(block)? else {
            return Ok(None);
        };
        let receipts = self
            .store
            .receipts(block.header.number)
            .map_err(internal)?
            .unwrap_or_default();
        Ok(Some(
            receipts
                .into_iter()
                .map(|stored| stored.receipt.into())
                .collect(),
        ))
    }

    fn raw_transaction(&self, hash: B256) -> RpcResult<Bytes> {
        Ok(crate::EthTxApiServer::raw_transaction_by_hash(self, hash)?.unwrap_or_default())
    }

    fn bad_blocks(&self) -> RpcResult<Vec<serde_json::Value>> {
        Ok(Vec::new())
    }

    fn raw_block_access_list(&self, _block: BlockId) -> RpcResult<Bytes> {
        Err(no_access_lists())
    }

    fn block_access_list(&self, _block: BlockId) -> RpcResult<Option<serde_json::Value>> {
        Err(no_access_lists())
    }

    async fn trace_transaction(
        &self,
        extensions: &Extensions,
        hash: B256,
        options: Option<GethDebugTracingOptions>,
    ) -> RpcResult<GethTrace> {
        let Some((number, index)) = self.store.tx_location(hash).map_err(internal)? else {
            return Err(ErrorObjectOwned::owned(
                -32000,
                format!(
                    "transaction {hash} not found (a preconfirmed transaction is traced once its block is sealed)"
                ),
                None::<()>,
            ));
        };
        let index = index as usize;
        let traces = self
            .trace_sealed(extensions, number, Some(index), options.unwrap_or_default())
            .await?
            .unwrap_or_default();
        match traces.into_iter().next() {
            Some(TraceResult::Success { result, .. }) => Ok(result),
            Some(TraceResult::Error { error, .. }) => Err(internal(error)),
            None => Err(internal(format!(
                "block {number} has no transaction {index}"
            ))),
        }
    }

    async fn trace_block_by_number(
        &self,
        extensions: &Extensions,
        block: BlockNumberOrTag,
        options: Option<GethDebugTracingOptions>,
    ) -> RpcResult<Vec<TraceResult>> {
        let number = self.resolve(block);
        self.trace_sealed(extensions, number, None, options.unwrap_or_default())
            .await?
            .ok_or_else(|| {
                ErrorObjectOwned::owned(-32000, format!("block #{number} not found"), None::<()>)
            })
    }

    async fn trace_block_by_hash(
        &self,
        extensions: &Extensions,
        hash: B256,
        options: Option<GethDebugTracingOptions>,
    ) -> RpcResult<Vec<TraceResult>> {
        let not_found =
            || ErrorObjectOwned::owned(-32000, format!("block {hash} not found"), None::<()>);
        let number = self.block_number_of(hash)?.ok_or_else(not_found)?;
        self.trace_sealed(extensions, number, None, options.unwrap_or_default())
            .await?
            .ok_or_else(not_found)
    }

    async fn trace_call(
        &self,
        extensions: &Extensions,
        request: TransactionRequest,
        block: Option<BlockId>,
        options: Option<GethDebugTracingCallOptions>,
    ) -> RpcResult<GethTrace> {
        let options = options.unwrap_or_default();
        let overrides = crate::call::Overrides {
            state: options.state_overrides,
            block: options.block_overrides.map(Box::new),
        };
        let tracing = options.tracing_options;
        self.run_message(
            extensions,
            &request,
            block,
            overrides,
            move |context, message, deadline| {
                trace_call(context, message, &tracing, deadline).map_err(trace_error)
            },
        )
        .await
    }
}

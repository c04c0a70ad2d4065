//! baton-rpc: the JSON-RPC every node serves, HTTP and WebSocket on one port.
//!
//! ```text
//!  wallet / operator ──HTTP|WS──▶ jsonrpsee ──▶ eth_*      (applied chain, via Store;
//!                                            │              writes to the leader's sequencer)
//!                                            ├─▶ conductor_* (Raft leadership, membership)
//!                                            └─▶ baton_*     (node status)
//! ```
//!
//! Every answer comes from applied (hence committed) state: DESIGN invariant 1.

mod baton;
mod call;
mod conductor;
mod eth;
mod fault;
mod filters;
mod logs;
mod pubsub;
mod state;
mod tx;

use std::net::SocketAddr;

use baton_consensus::Consensus;
use baton_storage::Store;
use jsonrpsee::{
    RpcModule,
    server::{BatchRequestConfig, Server, ServerConfig, ServerHandle},
    types::ErrorObjectOwned,
};

pub use baton::BatonApiServer;
pub use call::CallApiServer;
pub use conductor::{ConductorApiServer, UNAUTHORIZED};
pub use eth::EthApiServer;
pub use fault::FaultApiServer;
pub use filters::{FilterApiServer, Filters};
pub use logs::LogsApiServer;
pub use pubsub::PubSubApiServer;
pub use state::StateApiServer;
pub use tx::{Forwarder, MAX_TX_BYTES, TxApiServer};

/// Largest request body we read (a batch of raw transactions fits comfortably).
pub const MAX_REQUEST_BYTES: u32 = 5 * 1024 * 1024;
/// Most calls in one JSON-RPC batch.
pub const MAX_BATCH_LEN: u32 = 100;
/// Most open connections (wallets, dapps, and followers forwarding writes).
pub const MAX_CONNECTIONS: u32 = 4_096;

/// Why the RPC server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot serve JSON-RPC: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot register RPC methods: {0}")]
    Register(#[from] jsonrpsee::core::RegisterMethodError),
}

/// What the handlers read from.
#[derive(Debug, Clone)]
pub struct RpcContext {
    pub chain_id: u64,
    pub consensus: Consensus,
    pub store: Store,
    pub network: baton_p2p::Network,
    /// This node's sequencer, for transactions while it leads.
    pub submit: baton_sequencer::SubmitHandle,
    /// The client writes are forwarded through, kept while the leader stays.
    pub forwarder: tx::Forwarder,
    /// Installed polling filters.
    pub filters: Filters,
    pub client_version: String,
    /// Serve `baton_faultPartition` (tests and the chaos harness only).
    pub fault_injection: bool,
    /// Bearer token that admin (`conductor_` writes) methods require; off when `None`.
    pub admin_token: Option<std::sync::Arc<str>>,
    /// Every voter's readiness, for `conductor_transferLeader`'s choice.
    pub members: tokio::sync::watch::Receiver<Vec<(baton_primitives::NodeId, bool)>>,
}

/// Serves every namespace on `listener` until the returned handle is stopped.
pub async fn serve(
    listener: std::net::TcpListener,
    context: RpcContext,
) -> Result<(ServerHandle, SocketAddr), RpcError> {
    listener.set_nonblocking(true)?;
    let config = ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST_BYTES)
        .set_batch_request_config(BatchRequestConfig::Limit(MAX_BATCH_LEN))
        .max_connections(MAX_CONNECTIONS)
        .build();
    let token = context.admin_token.clone();
    let http = tower::ServiceBuilder::new()
        .map_request(move |request| conductor::authorize(token.as_deref(), request));
    let server = Server::builder()
        .set_config(config)
        .set_http_middleware(http)
        .build_from_tcp(listener)?;
    let addr = server.local_addr()?;
    let mut module = RpcModule::new(());
    module.merge(EthApiServer::into_rpc(context.clone()))?;
    module.merge(StateApiServer::into_rpc(context.clone()))?;
    module.merge(TxApiServer::into_rpc(context.clone()))?;
    module.merge(CallApiServer::into_rpc(context.clone()))?;
    module.merge(LogsApiServer::into_rpc(context.clone()))?;
    module.merge(FilterApiServer::into_rpc(context.clone()))?;
    module.merge(PubSubApiServer::into_rpc(context.clone()))?;
    module.merge(ConductorApiServer::into_rpc(context.clone()))?;
    if context.fault_injection {
        module.merge(FaultApiServer::into_rpc(context.clone()))?;
    }
    module.merge(BatonApiServer::into_rpc(context))?;
    Ok((server.start(module), addr))
}

/// JSON-RPC invalid params (-32602) carrying `message`.
fn invalid_params(message: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        jsonrpsee::types::error::INVALID_PARAMS_CODE,
        message.to_string(),
        None::<()>,
    )
}

/// JSON-RPC internal error (-32603) carrying `message`.
fn internal(message: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        jsonrpsee::types::error::INTERNAL_ERROR_CODE,
        message.to_string(),
        None::<()>,
    )
}

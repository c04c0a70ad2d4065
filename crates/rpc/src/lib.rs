//! baton-rpc: the JSON-RPC every node serves, HTTP and WebSocket on one port.
//!
//! ```text
//!  wallet / operator ──HTTP|WS──▶ jsonrpsee ──▶ eth_*      EthHandler (applied chain, via Store;
//!                                            │              writes to the leader's sequencer;
//!                                            │              debug_*, txpool_* and the dev
//!                                            │              accounts' signing on it too)
//!                                            ├─▶ net_*, web3_*  NetHandler, Web3Handler
//!                                            ├─▶ conductor_*    ConductorHandler (leadership, membership)
//!                                            ├─▶ baton_*        BatonHandler (status, forwarded writes)
//!                                            └─▶ baton_clusterView  Watcher (GET /status's live feed)
//! ```
//!
//! One handler per namespace, each holding only what it needs; [`serve`] assembles
//! them. Every answer comes from applied (hence committed) state: DESIGN invariant 1.

mod accept;
mod baton;
mod call;
mod conductor;
mod debug;
mod dev;
mod eth;
mod fault;
mod filters;
mod flashblocks;
mod ids;
mod info;
mod logs;
mod metered;
mod net;
mod outbox;
mod pages;
mod pool;
mod pubsub;
mod simulate;
mod state;
mod tx;
mod txpool;
mod watch;

use std::{net::SocketAddr, sync::Arc};

use jsonrpsee::{
    Methods, RpcModule,
    server::{
        BatchRequestConfig, HttpBody, Server, ServerConfig, ServerHandle,
        middleware::rpc::RpcServiceBuilder, serve_with_graceful_shutdown, stop_channel,
    },
    types::ErrorObjectOwned,
};

pub use baton::{BatonApiServer, BatonHandler};
pub use call::EthCallApiServer;
pub use conductor::{ConductorApiServer, ConductorHandler, UNAUTHORIZED};
pub use debug::DebugApiServer;
pub use dev::{EthSignApiServer, Unlocked};
pub use eth::{DEFAULT_FLASHBLOCK_INTERVAL, EthBlocksApiServer, EthHandler};
pub use fault::{FaultApiServer, FaultHandler, StopTask};
pub use filters::EthFilterApiServer;
pub use info::EthInfoApiServer;
pub use logs::{EthLogsApiServer, QueryLimits};
pub use net::{NetApiServer, NetHandler, Web3ApiServer, Web3Handler};
pub use outbox::{DEFAULT_SUBSCRIPTION_BUFFER_BYTES, Outboxes};
pub use pages::RenderMetrics;
pub use pool::{ExecLimits, ExecPool, LIMIT_EXCEEDED};
pub use pubsub::EthPubSubApiServer;
pub use simulate::EthSimulateApiServer;
pub use state::EthStateApiServer;
pub use tx::{EthTxApiServer, MAX_TX_BYTES, Submitter};
pub use txpool::TxPoolApiServer;
pub use watch::{WatchApiServer, Watcher};

/// Default largest request body read (a batch of raw transactions fits comfortably).
pub const MAX_REQUEST_BYTES: u32 = 5 * 1024 * 1024;
/// Default largest answer sent (one call's, or a whole batch's).
pub const MAX_RESPONSE_BYTES: u32 = 10 * 1024 * 1024;
/// Default most calls in one JSON-RPC batch.
pub const MAX_BATCH_LEN: u32 = 100;
/// Limits on who holds the server's sockets, and how much one request may be.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most open connections (wallets, dapps, and followers forwarding writes).
    pub max_connections: u32,
    /// Most open TCP connections from one source address.
    pub per_ip: u32,
    /// Most subscriptions one WebSocket connection may hold.
    pub subscriptions_per_connection: u32,
    /// Most bytes of notifications waiting to be sent on one WebSocket connection
    /// (see [`Outboxes`]: the handlers' subscriptions apply it).
    pub subscription_buffer_bytes: usize,
    /// Largest request body (HTTP) or message (WebSocket) read; larger: 413 or
    /// `-32007`.
    pub max_request_bytes: u32,
    /// Largest answer sent, a batch's whole; larger: `-32008`.
    pub max_response_bytes: u32,
    /// Most calls in one batch; more: the batch is refused.
    pub max_batch_len: u32,
}

/// Why the RPC server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot serve JSON-RPC: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot register RPC methods: {0}")]
    Register(#[from] jsonrpsee::core::RegisterMethodError),
}

/// One handler per namespace, each holding only what it needs.
#[derive(Debug)]
pub struct Handlers {
    pub eth: EthHandler,
    pub net: NetHandler,
    pub web3: Web3Handler,
    pub conductor: ConductorHandler,
    pub baton: BatonHandler,
    /// `baton_clusterView` and its subscription (the status page's feed).
    pub watch: Watcher,
    /// `baton_fault*`: only on a node started with fault injection.
    pub fault: Option<FaultHandler>,
}

/// Every namespace's methods, as `serve` answers them (and as a caller in the
/// same process may, with `Methods::raw_json_request`).
pub fn methods(handlers: Handlers) -> Result<Methods, RpcError> {
    let Handlers {
        eth,
        net,
        web3,
        conductor,
        baton,
        watch,
        fault,
    } = handlers;
    let mut module = RpcModule::new(());
    module.merge(EthBlocksApiServer::into_rpc(eth.clone()))?;
    module.merge(EthStateApiServer::into_rpc(eth.clone()))?;
    module.merge(EthTxApiServer::into_rpc(eth.clone()))?;
    module.merge(EthCallApiServer::into_rpc(eth.clone()))?;
    module.merge(EthLogsApiServer::into_rpc(eth.clone()))?;
    module.merge(EthFilterApiServer::into_rpc(eth.clone()))?;
    module.merge(EthSignApiServer::into_rpc(eth.clone()))?;
    module.merge(EthInfoApiServer::into_rpc(eth.clone()))?;
    module.merge(DebugApiServer::into_rpc(eth.clone()))?;
    module.merge(TxPoolApiServer::into_rpc(eth.clone()))?;
    module.merge(EthSimulateApiServer::into_rpc(eth.clone()))?;
    module.merge(EthPubSubApiServer::into_rpc(eth))?;
    module.merge(NetApiServer::into_rpc(net))?;
    module.merge(Web3ApiServer::into_rpc(web3))?;
    module.merge(ConductorApiServer::into_rpc(conductor))?;
    module.merge(BatonApiServer::into_rpc(baton))?;
    module.merge(WatchApiServer::into_rpc(watch))?;
    if let Some(fault) = fault {
        module.merge(FaultApiServer::into_rpc(fault))?;
    }
    Ok(Methods::from(module))
}

/// Serves `methods` (see [`methods`]) on `listener` until the returned handle is
/// stopped. `admin_token` guards the `conductor_` methods that change anything;
/// `metrics` renders `GET /metrics` on the same port.
pub async fn serve(
    listener: std::net::TcpListener,
    admin_token: Option<Arc<str>>,
    metrics: Option<RenderMetrics>,
    limits: &ConnectionLimits,
    methods: Methods,
) -> Result<(ServerHandle, SocketAddr), RpcError> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let max_response_bytes = limits.max_response_bytes as usize;
    let config = ServerConfig::builder()
        .max_request_body_size(limits.max_request_bytes)
        .max_response_body_size(limits.max_response_bytes)
        .set_batch_request_config(BatchRequestConfig::Limit(limits.max_batch_len))
        .max_connections(limits.max_connections)
        .max_subscriptions_per_connection(limits.subscriptions_per_connection)
        .set_id_provider(ids::HexIds::default())
        .build();
    let http = tower::ServiceBuilder::new()
        .layer(pages::PagesLayer { metrics })
        .map_request(move |request| conductor::authorize(admin_token.as_deref(), request));
    let services = Server::builder()
        .set_config(config)
        .set_http_middleware(http)
        .set_rpc_middleware(
            RpcServiceBuilder::new()
                .layer_fn(move |service| metered::Metered::new(service, max_response_bytes)),
        )
        .to_service_builder();
    let (stop, handle) = stop_channel();
    let serve_one = {
        let stop = stop.clone();
        move |socket| {
            // The HTTP layers take jsonrpsee's body type, hyper hands its own.
            let service = tower::ServiceBuilder::new()
                .map_request(|request: http::Request<hyper::body::Incoming>| {
                    request.map(HttpBody::new)
                })
                .service(services.clone().build(methods.clone(), stop.clone()));
            let stopped = stop.clone().shutdown();
            async move {
                if let Err(e) = serve_with_graceful_shutdown(socket, service, stopped).await {
                    tracing::debug!(error = %e, "RPC connection ended with an error");
                }
            }
        }
    };
    let per_ip = accept::PerIp::new(limits.per_ip);
    tokio::spawn(accept::run(listener, per_ip, stop, serve_one));
    Ok((handle, addr))
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

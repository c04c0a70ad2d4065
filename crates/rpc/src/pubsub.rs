//! `eth_subscribe` over WebSocket: `newHeads` and `logs`, pushed as blocks are
//! sealed (hence committed: DESIGN invariant 1), and the preconfirmation streams
//! `newFlashblocks`, `newFlashblockTransactions` and `pendingLogs`, pushed as
//! committed batches apply (`flashblocks`). A slow subscriber is dropped, with an
//! error notification, rather than allowed to hold the node's memory (`outbox`).

use alloy_rpc_types_eth::{Filter, Header};
use jsonrpsee::{
    PendingSubscriptionSink,
    core::{SubscriptionResult, async_trait},
    proc_macros::rpc,
};
use serde_json::value::to_raw_value;

use crate::{
    EthHandler,
    flashblocks::{self, Stream},
    invalid_params,
    metered::Open,
};

#[rpc(server)]
pub trait EthPubSubApi {
    #[subscription(name = "eth_subscribe" => "eth_subscription", unsubscribe = "eth_unsubscribe", item = serde_json::Value)]
    async fn subscribe(&self, kind: String, filter: Option<Filter>) -> SubscriptionResult;
}

enum Kind {
    NewHeads,
    Logs(Box<Filter>),
}

#[async_trait]
impl EthPubSubApiServer for EthHandler {
    async fn subscribe(
        &self,
        pending: PendingSubscriptionSink,
        kind: String,
        filter: Option<Filter>,
    ) -> SubscriptionResult {
        // A log subscription's criteria count against the filter bytes while it lives.
        let held = match kind.as_str() {
            "logs" | "pendingLogs" => match self.filters.hold(filter.as_ref()) {
                Ok(held) => Some(held),
                Err(refused) => {
                    pending.reject(refused).await;
                    return Ok(());
                }
            },
            _ => None,
        };
        let preconfirmations = match kind.as_str() {
            "newFlashblocks" => Some(Stream::Flashblocks),
            "newFlashblockTransactions" => Some(Stream::Transactions),
            "pendingLogs" => Some(Stream::PendingLogs(Box::new(
                filter.clone().unwrap_or_default(),
            ))),
            _ => None,
        };
        if let Some(stream) = preconfirmations {
            let sink = pending.accept().await?;
            let _held = held;
            return flashblocks::run(self.clone(), sink, stream, self.flashblock_interval).await;
        }
        let kind = match kind.as_str() {
            "newHeads" => Kind::NewHeads,
            "logs" => Kind::Logs(Box::new(filter.unwrap_or_default())),
            other => {
                pending
                    .reject(invalid_params(format!(
                        "unsupported subscription {other:?}: use newHeads, logs, \
                         newFlashblocks, newFlashblockTransactions or pendingLogs"
                    )))
                    .await;
                return Ok(());
            }
        };
        let sink = pending.accept().await?;
        let _open = Open::new("baton_rpc_subscriptions");
        let _held = held;
        let outbox = self.outboxes.open(&sink);
        let mut chain = self.consensus.chain();
        let mut next = chain.borrow().head.number() + 1;
        loop {
            tokio::select! {
                changed = chain.changed() => if changed.is_err() { return Ok(()) },
                _ = sink.closed() => return Ok(()),
            }
            let head = chain.borrow().head.number();
            while next <= head {
                let items = match self.notifications(&kind, next) {
                    Ok(items) => items,
                    Err(e) => {
                        tracing::warn!(error = ?e, "subscription stopped");
                        return Err(e.message().into());
                    }
                };
                for item in items {
                    let raw = item?;
                    if let Err(unsent) = outbox.send(&sink, raw).await {
                        return unsent.into_result();
                    }
                }
                next += 1;
            }
        }
    }
}

type Notification = Result<Box<serde_json::value::RawValue>, serde_json::Error>;

impl EthHandler {
    /// What block `number` means to a subscription of `kind`.
    fn notifications(
        &self,
        kind: &Kind,
        number: u64,
    ) -> jsonrpsee::core::RpcResult<Vec<Notification>> {
        match kind {
            Kind::NewHeads => {
                let Some(block) = self.store.block(number).map_err(crate::internal)? else {
                    return Ok(Vec::new());
                };
                let header = Header {
                    hash: block.hash,
                    inner: block.header,
                    total_difficulty: Some(Default::default()),
                    size: None,
                };
                Ok(vec![to_raw_value(&header)])
            }
            Kind::Logs(filter) => {
                let mut logs = Vec::new();
                self.matching_logs(number, filter, &mut logs, usize::MAX)?;
                Ok(logs.iter().map(to_raw_value).collect())
            }
        }
    }
}

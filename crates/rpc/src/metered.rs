//! What the RPC server tells Prometheus: requests by method and outcome with
//! their latency (a batch's calls one by one), open connections, and open
//! subscriptions. Method names come from callers, so only methods the server knows
//! get their own label; anything else counts as `unknown` (a stranger cannot grow
//! the label set).

use std::{future::Future, sync::Arc, time::Instant};

use jsonrpsee::{
    MethodResponse,
    core::{
        middleware::{Batch, BatchEntry, Notification, RpcServiceT},
        server::BatchResponseBuilder,
    },
    types::{ErrorCode, Request},
};

/// Wraps each connection's RPC service; one per connection.
#[derive(Debug, Clone)]
pub(crate) struct Metered<S> {
    service: S,
    /// Largest batch answer, in bytes (the server's response limit).
    max_response_bytes: usize,
    _connection: Arc<Open>,
}

impl<S> Metered<S> {
    pub(crate) fn new(service: S, max_response_bytes: usize) -> Self {
        Self {
            service,
            max_response_bytes,
            _connection: Arc::new(Open::new("baton_rpc_connections")),
        }
    }
}

/// Counts one open thing in gauge `name` for as long as it lives.
#[derive(Debug)]
pub(crate) struct Open {
    name: &'static str,
}

impl Open {
    pub(crate) fn new(name: &'static str) -> Self {
        metrics::gauge!(name).increment(1.0);
        Self { name }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!(self.name).decrement(1.0);
    }
}

impl<S> RpcServiceT for Metered<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = S::MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(
        &self,
        request: Request<'a>,
    ) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        let service = self.service.clone();
        async move {
            let method = request.method_name().to_string();
            let started = Instant::now();
            let response = service.call(request).await;
            let (method, outcome) = match response.as_error_code() {
                None => (method, "ok"),
                Some(code) if code == ErrorCode::MethodNotFound.code() => {
                    ("unknown".to_string(), "error")
                }
                Some(_) => (method, "error"),
            };
            metrics::histogram!("baton_rpc_request_seconds", "method" => method.clone())
                .record(started.elapsed());
            metrics::counter!("baton_rpc_requests_total", "method" => method, "outcome" => outcome)
                .increment(1);
            response
        }
    }

    /// Each call of a batch is metered as the same call sent alone would be.
    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        let this = self.clone();
        async move {
            let mut responses = BatchResponseBuilder::new_with_limit(this.max_response_bytes);
            let mut notified = false;
            for entry in batch {
                let response = match entry {
                    Ok(BatchEntry::Call(request)) => this.call(request).await,
                    Ok(BatchEntry::Notification(notification)) => {
                        notified = true;
                        this.service.notification(notification).await;
                        continue;
                    }
                    Err(invalid) => {
                        let (error, id) = invalid.into_parts();
                        MethodResponse::error(id, error)
                    }
                };
                if let Err(too_large) = responses.append(response) {
                    return too_large;
                }
            }
            if responses.is_empty() && notified {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(responses.finish())
            }
        }
    }

    fn notification<'a>(
        &self,
        notification: Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.service.notification(notification)
    }
}

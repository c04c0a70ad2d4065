//! Plain HTTP pages served beside JSON-RPC on the same port: `GET /metrics`
//! (Prometheus text format) and `GET /status` (the live status page: one
//! self-contained file, no build step, no CDN, fed by `baton_subscribeClusterView`
//! over this port's WebSocket). Everything else goes on to JSON-RPC.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use jsonrpsee::{
    core::BoxError,
    server::{HttpBody, HttpRequest, HttpResponse},
};

/// The status page (`watch` feeds it).
const STATUS_PAGE: &str = include_str!("status.html");

/// Renders the metrics page.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Adds the pages to the HTTP stack.
#[derive(Clone)]
pub(crate) struct PagesLayer {
    pub(crate) metrics: Option<RenderMetrics>,
}

impl<S> tower::Layer<S> for PagesLayer {
    type Service = Pages<S>;

    fn layer(&self, inner: S) -> Pages<S> {
        Pages {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// Answers the pages; passes anything else to `inner`.
#[derive(Clone)]
pub(crate) struct Pages<S> {
    inner: S,
    metrics: Option<RenderMetrics>,
}

type Answer = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

impl<S> tower::Service<HttpRequest> for Pages<S>
where
    S: tower::Service<HttpRequest, Response = HttpResponse, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Answer {
        if request.method() == http::Method::GET
            && request.uri().path() == "/metrics"
            && let Some(render) = &self.metrics
        {
            let page = render();
            return Box::pin(async move {
                let response = http::Response::builder()
                    .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
                    .body(HttpBody::from(page))?;
                Ok(response)
            });
        }
        if request.method() == http::Method::GET && request.uri().path() == "/status" {
            return Box::pin(async move {
                let response = http::Response::builder()
                    .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
                    .body(HttpBody::from(STATUS_PAGE))?;
                Ok(response)
            });
        }
        Box::pin(self.inner.call(request))
    }
}

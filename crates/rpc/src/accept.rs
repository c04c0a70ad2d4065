//! The RPC port's accept loop: every TCP connection is counted against its source
//! address before jsonrpsee sees it, so one host cannot take the whole connection
//! limit (idle WebSockets, keep-alive HTTP) from everyone else.
//!
//! A connection past its address's limit is answered `429 Too Many Requests` with
//! a JSON-RPC error body (`-32005`, which names the limit) and closed.

use std::{
    collections::HashMap,
    future::Future,
    io::IoSlice,
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use jsonrpsee::server::StopHandle;
use parking_lot::Mutex;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
};

use crate::LIMIT_EXCEEDED;

/// Open connections per source address, against one limit.
#[derive(Debug)]
pub(crate) struct PerIp {
    limit: u32,
    /// Invariant: holds only addresses with at least one open connection.
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl PerIp {
    pub(crate) fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Counts one more connection from `ip`, or `None` when it holds its limit.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpPermit> {
        let mut open = self.open.lock();
        if open.get(&ip).is_some_and(|count| *count >= self.limit) || self.limit == 0 {
            return None;
        }
        *open.entry(ip).or_insert(0) += 1;
        Some(IpPermit {
            per_ip: self.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn open_from(&self, ip: IpAddr) -> u32 {
        self.open.lock().get(&ip).copied().unwrap_or(0)
    }
}

/// One open connection from `ip`; dropping it frees the place.
struct IpPermit {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpPermit {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            debug_assert!(*count > 0, "an open address counts its connections");
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// An admitted connection: it holds its address's place for as long as the socket
/// lives, also after an upgrade to a WebSocket (which outlives the HTTP exchange).
pub(crate) struct Counted {
    stream: TcpStream,
    _permit: IpPermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Accepts connections on `listener` until `stop`, handing each one that its
/// address's limit admits to `serve_one`, which serves it to the end.
pub(crate) async fn run<F, Fut>(
    listener: TcpListener,
    per_ip: Arc<PerIp>,
    stop: StopHandle,
    serve_one: F,
) where
    F: Fn(Counted) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let (socket, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!(error = %e, "cannot accept an RPC connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.clone().shutdown() => return,
        };
        let ip = remote.ip().to_canonical();
        let Some(permit) = per_ip.admit(ip) else {
            metrics::counter!("baton_rpc_connections_refused_total", "why" => "per-ip")
                .increment(1);
            tokio::spawn(refuse(socket, ip, per_ip.limit));
            continue;
        };
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        tokio::spawn(serve_one(Counted {
            stream: socket,
            _permit: permit,
        }));
    }
}

/// Answers a connection over its address's limit with 429 and a JSON-RPC error,
/// after reading what the client sent first (closing on unread bytes would reset
/// the connection before the client reads the answer).
async fn refuse(mut socket: TcpStream, ip: IpAddr, limit: u32) {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": LIMIT_EXCEEDED,
            "message": format!("too many connections from {ip}: at most {limit} per address"),
        },
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = async {
        let mut request = [0u8; 8192];
        let _ = socket.read(&mut request).await;
        socket.write_all(response.as_bytes()).await?;
        socket.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), answer).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_own_limit_and_closing_frees_a_place() {
        let per_ip = PerIp::new(2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = per_ip.admit(a).expect("first");
        let _second = per_ip.admit(a).expect("second");
        assert!(per_ip.admit(a).is_none(), "a third from the same address");
        let _other = per_ip.admit(b).expect("another address has its own limit");
        drop(first);
        assert_eq!(per_ip.open_from(a), 1);
        let _again = per_ip.admit(a).expect("a place was freed");
        assert!(per_ip.admit(a).is_none());
    }

    #[test]
    fn addresses_with_nothing_open_are_forgotten() {
        let per_ip = PerIp::new(1);
        let a: IpAddr = "::1".parse().expect("ip");
        drop(per_ip.admit(a).expect("first"));
        assert!(per_ip.open.lock().is_empty());
        let zero = PerIp::new(0);
        assert!(zero.admit(a).is_none());
        assert!(zero.open.lock().is_empty());
    }
}

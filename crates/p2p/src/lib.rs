//! Carries opaque request/response byte messages between the members of a small
//! cluster, and nothing else: no peer discovery, no broadcast, no knowledge of
//! what the bytes mean (the consensus crate puts bincode-encoded Raft RPCs in them).
//!
//! ```text
//!  Network::request(peer, bytes) ──Command──▶ swarm task ──/baton/rpc/1──▶ peer's swarm task
//!                                                                              │
//!  caller ◀── response bytes ◀── swarm task ◀── InboundRequest::respond ◀── mpsc::Receiver
//! ```
//!
//! Key types: [`Network`] (a cheap handle to the swarm task), [`InboundRequest`]
//! (a request from a member, answered once), [`P2pConfig`] and [`P2pError`].
//!
//! Only the configured members may connect: connections from any other peer id
//! are refused once noise has authenticated it, and requests from a peer that is
//! no longer allowed are dropped before they reach the caller.

mod codec;
mod key;
mod swarm;

use std::time::Duration;

pub use key::load_or_create_key;
pub use libp2p::{Multiaddr, PeerId, identity::Keypair};
use tokio::sync::{mpsc, oneshot};

use crate::swarm::Command;
pub use crate::swarm::tcp_socket_addr;

/// Result of this crate's operations.
pub type Result<T, E = P2pError> = std::result::Result<T, E>;

/// Everything a node needs to join the cluster network.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// This node's identity; its public key is the peer id members allow.
    pub keypair: Keypair,
    /// Where to accept connections, e.g. `/ip4/127.0.0.1/tcp/30301`.
    pub listen: Multiaddr,
    /// The other members: both the allowlist and where to dial them.
    pub peers: Vec<(PeerId, Multiaddr)>,
    /// Largest request or response, in bytes; larger frames are an error.
    pub max_message_bytes: usize,
    /// How long a request may wait for its response, dialing included.
    pub request_timeout: Duration,
}

impl P2pConfig {
    /// Checks the relations between fields that `start` relies on.
    pub fn validate(&self) -> Result<()> {
        if self.max_message_bytes == 0 || u32::try_from(self.max_message_bytes).is_err() {
            // Frames carry a u32 length prefix.
            return Err(P2pError::InvalidConfig(
                "max_message_bytes must be in 1..=u32::MAX",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(P2pError::InvalidConfig("request_timeout must be positive"));
        }
        let local = self.keypair.public().to_peer_id();
        if self.peers.iter().any(|(peer, _)| *peer == local) {
            return Err(P2pError::InvalidConfig(
                "peers must not contain this node's own peer id",
            ));
        }
        Ok(())
    }
}

/// A member's libp2p identity and dial address, from their text forms (as a
/// config file or a membership entry holds them).
pub fn parse_peer(peer_id: &str, addr: &str) -> Result<(PeerId, Multiaddr)> {
    let peer = peer_id
        .parse()
        .map_err(|e| P2pError::BadPeer(format!("peer id {peer_id:?}: {e}")))?;
    let addr = addr
        .parse()
        .map_err(|e| P2pError::BadPeer(format!("address {addr:?}: {e}")))?;
    Ok((peer, addr))
}

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// A peer id or address does not parse.
    #[error("bad peer: {0}")]
    BadPeer(String),
    /// The configuration is inconsistent.
    #[error("invalid p2p config: {0}")]
    InvalidConfig(&'static str),
    /// The listen address is not `/ip4|ip6/<addr>/tcp/<port>`.
    #[error("cannot listen on {0}: expected /ip4/<addr>/tcp/<port> or /ip6/<addr>/tcp/<port>")]
    UnsupportedListenAddr(Multiaddr),
    /// The listen address could not be bound (typically: already in use).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: Multiaddr,
        #[source]
        source: std::io::Error,
    },
    /// The noise handshake could not be set up from the keypair.
    #[error("cannot set up noise encryption: {0}")]
    Noise(#[from] libp2p::noise::Error),
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    KeyFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key file exists but does not hold an encoded keypair.
    #[error("key file {path} is corrupt: {source}")]
    CorruptKey {
        path: std::path::PathBuf,
        #[source]
        source: libp2p::identity::DecodingError,
    },
    /// A freshly generated keypair could not be encoded for the key file.
    #[error("cannot encode the node key: {0}")]
    KeyEncoding(#[from] libp2p::identity::DecodingError),
    /// The peer is not in the allowlist, so there is no address to dial.
    #[error("peer {0} is not an allowed member")]
    UnknownPeer(PeerId),
    /// No connection to the peer could be established.
    #[error("cannot connect to peer {0}")]
    DialFailure(PeerId),
    /// The peer did not answer in time.
    #[error("peer {0} did not answer in time")]
    Timeout(PeerId),
    /// The connection closed before the response arrived.
    #[error("connection to peer {0} closed before it answered")]
    ConnectionClosed(PeerId),
    /// The peer does not speak `/baton/rpc/1`.
    #[error("peer {0} does not support the baton rpc protocol")]
    UnsupportedProtocol(PeerId),
    /// The exchange broke on the stream: the peer refused an oversize frame,
    /// sent one, or dropped the request without answering.
    #[error("request to peer {peer} failed: {source}")]
    Stream {
        peer: PeerId,
        #[source]
        source: std::io::Error,
    },
    /// The request is larger than the configured frame limit.
    #[error("message of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    /// The swarm task has stopped (after `shutdown`, or it failed).
    #[error("the p2p network has stopped")]
    NetworkStopped,
}

/// A cheap-to-clone handle to the running swarm task.
#[derive(Debug, Clone)]
pub struct Network {
    local_peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    max_message_bytes: usize,
    request_timeout: Duration,
}

impl Network {
    /// Binds the listener (failing with [`P2pError::Listen`] if the address is
    /// taken) and spawns the swarm task on the current tokio runtime.
    pub async fn start(config: P2pConfig) -> Result<(Network, mpsc::Receiver<InboundRequest>)> {
        config.validate()?;
        let local_peer_id = config.keypair.public().to_peer_id();
        let max_message_bytes = config.max_message_bytes;
        let request_timeout = config.request_timeout;
        let (commands, inbound) = swarm::spawn(config)?;
        let network = Network {
            local_peer_id,
            commands,
            max_message_bytes,
            request_timeout,
        };
        Ok((network, inbound))
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// Sends one request to an allowed peer and waits for its response, dialing
    /// the configured address if there is no connection yet.
    pub async fn request(&self, peer: PeerId, payload: Vec<u8>) -> Result<Vec<u8>> {
        if payload.len() > self.max_message_bytes {
            return Err(P2pError::TooLarge {
                size: payload.len(),
                max: self.max_message_bytes,
            });
        }
        let (reply, response) = oneshot::channel();
        self.send(Command::Request {
            peer,
            payload,
            reply,
        })
        .await?;
        // request-response's own timeout starts only once a connection exists;
        // this bounds the dial too, so callers never wait past request_timeout.
        match tokio::time::timeout(self.request_timeout, response).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(P2pError::NetworkStopped),
            Err(_) => Err(P2pError::Timeout(peer)),
        }
    }

    /// Adds an allowed member, or updates its dial address (membership change).
    pub async fn allow_peer(&self, peer: PeerId, addr: Multiaddr) -> Result<()> {
        let (done, ack) = oneshot::channel();
        self.send(Command::AllowPeer { peer, addr, done }).await?;
        ack.await.map_err(|_| P2pError::NetworkStopped)
    }

    /// Removes a member from the allowlist and closes its connections.
    pub async fn disallow_peer(&self, peer: PeerId) -> Result<()> {
        let (done, ack) = oneshot::channel();
        self.send(Command::DisallowPeer { peer, done }).await?;
        ack.await.map_err(|_| P2pError::NetworkStopped)
    }

    /// Number of allowed peers with at least one open connection.
    pub async fn connected_peers(&self) -> Result<usize> {
        let (reply, count) = oneshot::channel();
        self.send(Command::ConnectedPeers { reply }).await?;
        count.await.map_err(|_| P2pError::NetworkStopped)
    }

    /// Stops the swarm task and waits until its listener is closed, so a node
    /// restarted in the same process can bind the port again. Pending requests
    /// fail with [`P2pError::NetworkStopped`]. Idempotent.
    pub async fn shutdown(&self) {
        let (done, stopped) = oneshot::channel();
        if self.commands.send(Command::Shutdown { done }).await.is_ok() {
            // An error here means the task is gone already, which is the goal.
            let _ = stopped.await;
        }
    }

    async fn send(&self, command: Command) -> Result<()> {
        self.commands
            .send(command)
            .await
            .map_err(|_| P2pError::NetworkStopped)
    }
}

/// A request from an allowed member. Answer it with [`InboundRequest::respond`];
/// dropping it instead makes the requester's call fail (it never hangs).
#[derive(Debug)]
pub struct InboundRequest {
    /// The member that sent the request.
    pub peer: PeerId,
    /// The request bytes.
    pub payload: Vec<u8>,
    reply: oneshot::Sender<Vec<u8>>,
}

impl InboundRequest {
    /// Sends the response. A response larger than the frame limit is not sent
    /// and the requester gets an error.
    pub fn respond(self, payload: Vec<u8>) {
        // Fails only if the swarm task has stopped; its connections are closed,
        // so there is no requester left to answer.
        let _ = self.reply.send(payload);
    }
}

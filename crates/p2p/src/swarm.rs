//! The swarm task: owns the libp2p `Swarm`, performs the [`Command`]s sent by
//! [`Network`](crate::Network) handles, and routes request-response events back to
//! the callers waiting on them. Everything libp2p-specific stays in this module.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, TcpListener},
    ops::ControlFlow,
    time::Duration,
};

use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use libp2p::{
    Multiaddr, PeerId, SwarmBuilder,
    allow_block_list::{self, AllowedPeers},
    core::transport::TransportError,
    multiaddr::Protocol,
    noise,
    request_response::{
        self, OutboundFailure, OutboundRequestId, ProtocolSupport, ResponseChannel,
    },
    swarm::{NetworkBehaviour, Swarm, SwarmEvent},
    tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    InboundRequest, P2pConfig, P2pError, Result,
    codec::{FrameCodec, PROTOCOL},
};

/// Commands queued between handles and the task; callers wait when it is full.
const COMMAND_BUFFER: usize = 1024;
/// Inbound requests not yet taken by the consumer. Beyond this the node is
/// overloaded, and refusing (the requester gets an error and Raft retries)
/// beats holding up the swarm task or growing without bound.
const INBOUND_BUFFER: usize = 1024;
/// Concurrent request streams per connection. The default of 100 is tight for
/// Raft pipelining appends while heartbeats and votes share the connection.
const MAX_STREAMS_PER_CONNECTION: usize = 256;
/// Heartbeats keep member connections busy; this only closes connections to
/// members that have gone quiet, so a reconnect is rare and latency stays low.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// What a [`Network`](crate::Network) handle asks the swarm task to do.
pub(crate) enum Command {
    Request {
        peer: PeerId,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>>>,
    },
    AllowPeer {
        peer: PeerId,
        addr: Multiaddr,
        done: oneshot::Sender<()>,
    },
    DisallowPeer {
        peer: PeerId,
        done: oneshot::Sender<()>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<usize>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    /// Refuses connections, in both directions, to any peer id not listed.
    allowlist: allow_block_list::Behaviour<AllowedPeers>,
    rpc: request_response::Behaviour<FrameCodec>,
}

/// An inbound request handed to the consumer, waiting for its answer.
type PendingReply = BoxFuture<'static, (ResponseChannel<Vec<u8>>, Option<Vec<u8>>)>;

/// Binds the listener and spawns the task; returns the command sender and the
/// inbound request receiver.
pub(crate) fn spawn(
    config: P2pConfig,
) -> Result<(mpsc::Sender<Command>, mpsc::Receiver<InboundRequest>)> {
    let mut swarm = build_swarm(&config)?;
    listen(&mut swarm, &config.listen)?;
    for (peer, _) in &config.peers {
        swarm.behaviour_mut().allowlist.allow_peer(*peer);
    }

    let (commands, command_rx) = mpsc::channel(COMMAND_BUFFER);
    let (inbound, inbound_rx) = mpsc::channel(INBOUND_BUFFER);
    let task = SwarmTask {
        swarm,
        peers: config.peers.into_iter().collect(),
        pending: HashMap::new(),
        replies: FuturesUnordered::new(),
        inbound,
        max_message_bytes: config.max_message_bytes,
    };
    tokio::spawn(task.run(command_rx));
    Ok((commands, inbound_rx))
}

fn build_swarm(config: &P2pConfig) -> Result<Swarm<Behaviour>> {
    let rpc_config = request_response::Config::default()
        .with_request_timeout(config.request_timeout)
        .with_max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    let behaviour = Behaviour {
        allowlist: allow_block_list::Behaviour::default(),
        rpc: request_response::Behaviour::with_codec(
            FrameCodec::new(config.max_message_bytes),
            [(PROTOCOL, ProtocolSupport::Full)],
            rpc_config,
        ),
    };
    let Ok(builder) = SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| behaviour);
    Ok(builder
        .with_swarm_config(|swarm| swarm.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        // A dial must not outlive the request that caused it.
        .with_connection_timeout(config.request_timeout)
        .build())
}

fn listen(swarm: &mut Swarm<Behaviour>, addr: &Multiaddr) -> Result<()> {
    let socket =
        tcp_socket_addr(addr).ok_or_else(|| P2pError::UnsupportedListenAddr(addr.clone()))?;
    // libp2p-tcp sets SO_REUSEPORT on its listeners, so a second node on a taken
    // port would bind "successfully" and silently split the incoming connections.
    // A plain bind fails while anyone listens there, which is the error we want.
    if socket.port() != 0 {
        TcpListener::bind(socket).map_err(|source| P2pError::Listen {
            addr: addr.clone(),
            source,
        })?;
    }
    swarm.listen_on(addr.clone()).map_err(|e| match e {
        TransportError::MultiaddrNotSupported(addr) => P2pError::UnsupportedListenAddr(addr),
        TransportError::Other(source) => P2pError::Listen {
            addr: addr.clone(),
            source,
        },
    })?;
    Ok(())
}

/// `/ip4|ip6/<addr>/tcp/<port>`, optionally ending in `/p2p/<id>` as libp2p-tcp allows.
pub fn tcp_socket_addr(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut parts = addr.iter();
    let ip = match parts.next()? {
        Protocol::Ip4(ip) => IpAddr::from(ip),
        Protocol::Ip6(ip) => IpAddr::from(ip),
        _ => return None,
    };
    let Protocol::Tcp(port) = parts.next()? else {
        return None;
    };
    let rest: Vec<Protocol> = parts.collect();
    matches!(rest.as_slice(), [] | [Protocol::P2p(_)]).then_some(SocketAddr::new(ip, port))
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    /// The allowlist with each member's dial address. Invariant: holds exactly
    /// the peers in `swarm.behaviour().allowlist`.
    peers: HashMap<PeerId, Multiaddr>,
    /// Callers waiting for the response to their outbound request.
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>>>>,
    replies: FuturesUnordered<PendingReply>,
    inbound: mpsc::Sender<InboundRequest>,
    max_message_bytes: usize,
}

impl SwarmTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let shutdown_done = loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => {
                        if let ControlFlow::Break(done) = self.handle_command(command) {
                            break Some(done);
                        }
                    }
                    // Every handle is gone: no one can send requests or stop us.
                    None => break None,
                },
                event = self.swarm.select_next_some() => self.handle_event(event),
                Some((channel, response)) = self.replies.next(), if !self.replies.is_empty() => {
                    self.send_response(channel, response);
                }
            }
        };
        // Dropping the swarm closes the listener and every connection; only then
        // is the port free for a restarted node.
        drop(self);
        if let Some(done) = shutdown_done {
            let _ = done.send(());
        }
        tracing::debug!("p2p swarm task stopped");
    }

    /// Performs `command`; breaks with the acknowledgement to send once stopped.
    fn handle_command(&mut self, command: Command) -> ControlFlow<oneshot::Sender<()>> {
        match command {
            Command::Request {
                peer,
                payload,
                reply,
            } => {
                let Some(addr) = self.peers.get(&peer) else {
                    let _ = reply.send(Err(P2pError::UnknownPeer(peer)));
                    return ControlFlow::Continue(());
                };
                // Reuses the open connection when there is one; dials otherwise.
                let id = self.swarm.behaviour_mut().rpc.send_request_with_addresses(
                    &peer,
                    payload,
                    vec![addr.clone()],
                );
                self.pending.insert(id, reply);
            }
            Command::AllowPeer { peer, addr, done } => {
                self.swarm.behaviour_mut().allowlist.allow_peer(peer);
                self.peers.insert(peer, addr);
                let _ = done.send(());
            }
            Command::DisallowPeer { peer, done } => {
                // Also closes every connection to the peer.
                self.swarm.behaviour_mut().allowlist.disallow_peer(peer);
                self.peers.remove(&peer);
                let _ = done.send(());
            }
            Command::ConnectedPeers { reply } => {
                let count = self
                    .swarm
                    .connected_peers()
                    .filter(|peer| self.peers.contains_key(peer))
                    .count();
                let _ = reply.send(count);
            }
            Command::Shutdown { done } => return ControlFlow::Break(done),
        }
        ControlFlow::Continue(())
    }

    fn handle_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(event)) => self.handle_rpc_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Allowlist(never)) => match never {},
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "p2p listening");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                tracing::debug!(peer = %peer_id, ?cause, "connection closed");
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::warn!(peer = ?peer_id, %error, "dial failed");
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                tracing::debug!(from = %send_back_addr, %error, "refused incoming connection");
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!(%error, "p2p listener error");
            }
            _ => {}
        }
    }

    fn handle_rpc_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.deliver(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(outbound_error(peer, error)));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Hands an inbound request to the consumer. Dropping `channel` instead makes
    /// the requester's call fail promptly.
    fn deliver(&mut self, peer: PeerId, payload: Vec<u8>, channel: ResponseChannel<Vec<u8>>) {
        // The allowlist already refuses such connections; this guards the window
        // between disallow_peer and the connection actually closing.
        if !self.peers.contains_key(&peer) {
            tracing::warn!(%peer, "dropped a request from a peer that is not allowed");
            return;
        }
        let (reply, response) = oneshot::channel();
        match self.inbound.try_send(InboundRequest {
            peer,
            payload,
            reply,
        }) {
            Ok(()) => self
                .replies
                .push(response.map(|response| (channel, response.ok())).boxed()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(%peer, "dropped a request: inbound queue is full");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(%peer, "dropped a request: no one serves inbound requests");
            }
        }
    }

    fn send_response(&mut self, channel: ResponseChannel<Vec<u8>>, response: Option<Vec<u8>>) {
        let Some(response) = response else {
            // The consumer dropped the request; dropping the channel tells the peer.
            return;
        };
        if response.len() > self.max_message_bytes {
            tracing::warn!(
                size = response.len(),
                max = self.max_message_bytes,
                "dropped a response larger than the frame limit"
            );
            return;
        }
        if self
            .swarm
            .behaviour_mut()
            .rpc
            .send_response(channel, response)
            .is_err()
        {
            tracing::debug!("response came after the request timed out or its connection closed");
        }
    }
}

fn outbound_error(peer: PeerId, error: OutboundFailure) -> P2pError {
    match error {
        OutboundFailure::DialFailure => P2pError::DialFailure(peer),
        OutboundFailure::Timeout => P2pError::Timeout(peer),
        OutboundFailure::ConnectionClosed => P2pError::ConnectionClosed(peer),
        OutboundFailure::UnsupportedProtocols => P2pError::UnsupportedProtocol(peer),
        OutboundFailure::Io(source) => P2pError::Stream { peer, source },
    }
}

//! Networks talking over 127.0.0.1, through the public API only.

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use baton_p2p::{InboundRequest, Keypair, Multiaddr, Network, P2pConfig, P2pError, PeerId};
use tokio::sync::mpsc;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A node's identity and address, known before it starts so peers can list it.
struct Member {
    keypair: Keypair,
    addr: Multiaddr,
}

impl Member {
    fn new() -> Result<Self, Box<dyn std::error::Error>> {
        // Ask the OS for a free port; peers must know it before the node starts.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        Ok(Self {
            keypair: Keypair::generate_ed25519(),
            addr: format!("/ip4/127.0.0.1/tcp/{port}").parse()?,
        })
    }

    fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    fn entry(&self) -> (PeerId, Multiaddr) {
        (self.peer_id(), self.addr.clone())
    }

    fn config(&self, peers: &[&Member], max_message_bytes: usize) -> P2pConfig {
        P2pConfig {
            keypair: self.keypair.clone(),
            listen: self.addr.clone(),
            peers: peers.iter().map(|peer| peer.entry()).collect(),
            max_message_bytes,
            request_timeout: TIMEOUT,
        }
    }

    async fn start(&self, peers: &[&Member]) -> Result<Network, P2pError> {
        self.start_with_limit(peers, 1 << 20).await
    }

    /// Starts the node and answers every request with `reply(request)`.
    async fn start_with_limit(&self, peers: &[&Member], limit: usize) -> Result<Network, P2pError> {
        let (network, inbound) = Network::start(self.config(peers, limit)).await?;
        tokio::spawn(serve(inbound, |payload| {
            [b"re:".as_slice(), &payload].concat()
        }));
        Ok(network)
    }
}

async fn serve(mut inbound: mpsc::Receiver<InboundRequest>, reply: fn(Vec<u8>) -> Vec<u8>) {
    while let Some(request) = inbound.recv().await {
        let response = reply(request.payload.clone());
        request.respond(response);
    }
}

#[tokio::test]
async fn two_members_exchange_requests_both_ways() -> TestResult {
    let (a, b) = (Member::new()?, Member::new()?);
    let net_a = a.start(&[&b]).await?;
    let net_b = b.start(&[&a]).await?;

    assert_eq!(
        net_a.request(b.peer_id(), b"ping".to_vec()).await?,
        b"re:ping"
    );
    assert_eq!(
        net_b.request(a.peer_id(), b"pong".to_vec()).await?,
        b"re:pong"
    );
    assert_eq!(net_a.connected_peers().await?, 1);
    assert_eq!(net_b.connected_peers().await?, 1);

    net_a.shutdown().await;
    net_b.shutdown().await;
    Ok(())
}

/// Raft pipelines appends: many requests in flight at once must each get their own answer.
#[tokio::test]
async fn concurrent_requests_get_their_own_responses() -> TestResult {
    let (a, b) = (Member::new()?, Member::new()?);
    let net_a = a.start(&[&b]).await?;
    let _net_b = b.start(&[&a]).await?;

    let requests = (0..200u32).map(|i| {
        let net_a = net_a.clone();
        let peer = b.peer_id();
        async move { (i, net_a.request(peer, i.to_be_bytes().to_vec()).await) }
    });
    for (i, response) in futures::future::join_all(requests).await {
        assert_eq!(response?, [b"re:".as_slice(), &i.to_be_bytes()].concat());
    }
    Ok(())
}

/// Only configured peers may connect: a stranger's request is never delivered.
#[tokio::test]
async fn stranger_cannot_get_a_request_answered() -> TestResult {
    let (a, b, stranger) = (Member::new()?, Member::new()?, Member::new()?);
    let (net_a, mut inbound_a) = Network::start(a.config(&[&b], 1 << 20)).await?;
    // The stranger lists `a`, so it dials; `a` does not list the stranger.
    let net_stranger = stranger.start(&[&a]).await?;

    let result = net_stranger
        .request(a.peer_id(), b"let me in".to_vec())
        .await;
    assert!(result.is_err(), "{result:?}");
    assert!(
        inbound_a.try_recv().is_err(),
        "the request must not be delivered"
    );
    assert_eq!(net_a.connected_peers().await?, 0);

    let result = net_a.request(stranger.peer_id(), b"hello".to_vec()).await;
    assert!(
        matches!(result, Err(P2pError::UnknownPeer(_))),
        "{result:?}"
    );
    Ok(())
}

#[tokio::test]
async fn disallowed_member_is_disconnected_and_refused() -> TestResult {
    let (a, b) = (Member::new()?, Member::new()?);
    let net_a = a.start(&[&b]).await?;
    let net_b = b.start(&[&a]).await?;
    net_a.request(b.peer_id(), b"hi".to_vec()).await?;

    net_a.disallow_peer(b.peer_id()).await?;
    let result = net_a.request(b.peer_id(), b"hi".to_vec()).await;
    assert!(
        matches!(result, Err(P2pError::UnknownPeer(_))),
        "{result:?}"
    );
    let result = net_b.request(a.peer_id(), b"hi".to_vec()).await;
    assert!(result.is_err(), "{result:?}");

    net_a.allow_peer(b.peer_id(), b.addr.clone()).await?;
    assert_eq!(
        net_a.request(b.peer_id(), b"back".to_vec()).await?,
        b"re:back"
    );
    Ok(())
}

/// Frames over the limit are errors on whichever side sees them, never a panic.
#[tokio::test]
async fn oversize_messages_are_errors() -> TestResult {
    let (big, small) = (Member::new()?, Member::new()?);
    let net_big = big.start_with_limit(&[&small], 1 << 20).await?;
    let net_small = small.start_with_limit(&[&big], 1024).await?;

    // Over the sender's own limit: refused before anything is sent.
    let result = net_small.request(big.peer_id(), vec![0; 2048]).await;
    assert!(
        matches!(result, Err(P2pError::TooLarge { .. })),
        "{result:?}"
    );
    // Over the receiver's limit: the receiver refuses the frame.
    let result = net_big.request(small.peer_id(), vec![0; 2048]).await;
    assert!(matches!(result, Err(P2pError::Stream { .. })), "{result:?}");
    // A response over the requester's limit: 3 + 1022 bytes > 1024.
    let result = net_small.request(big.peer_id(), vec![0; 1022]).await;
    assert!(matches!(result, Err(P2pError::Stream { .. })), "{result:?}");
    // A response over the responder's limit is not sent.
    let result = net_big.request(small.peer_id(), vec![0; 1023]).await;
    assert!(matches!(result, Err(P2pError::Stream { .. })), "{result:?}");

    // The connection survives all of it.
    assert_eq!(
        net_big.request(small.peer_id(), b"ok".to_vec()).await?,
        b"re:ok"
    );
    Ok(())
}

#[tokio::test]
async fn dropped_request_fails_the_caller_promptly() -> TestResult {
    let (a, b) = (Member::new()?, Member::new()?);
    let net_a = a.start(&[&b]).await?;
    let (_net_b, mut inbound_b) = Network::start(b.config(&[&a], 1 << 20)).await?;
    tokio::spawn(async move {
        while let Some(request) = inbound_b.recv().await {
            drop(request);
        }
    });

    let started = Instant::now();
    let result = net_a.request(b.peer_id(), b"anyone?".to_vec()).await;
    assert!(matches!(result, Err(P2pError::Stream { .. })), "{result:?}");
    assert!(started.elapsed() < TIMEOUT, "must not wait for the timeout");
    Ok(())
}

#[tokio::test]
async fn unreachable_peer_fails_before_the_timeout() -> TestResult {
    let (a, down) = (Member::new()?, Member::new()?);
    let net_a = a.start(&[&down]).await?;

    let started = Instant::now();
    let result = net_a.request(down.peer_id(), b"hello?".to_vec()).await;
    assert!(
        matches!(result, Err(P2pError::DialFailure(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < TIMEOUT, "must not wait for the timeout");
    Ok(())
}

#[tokio::test]
async fn shutdown_frees_the_port_for_a_restart() -> TestResult {
    let (a, b) = (Member::new()?, Member::new()?);
    let net_a = a.start(&[&b]).await?;
    let net_b = b.start(&[&a]).await?;
    net_a.request(b.peer_id(), b"before".to_vec()).await?;

    // While `b` runs, its address is taken.
    let result = b.start(&[&a]).await;
    assert!(matches!(result, Err(P2pError::Listen { .. })), "{result:?}");

    net_b.shutdown().await;
    let result = net_b.request(a.peer_id(), b"stopped".to_vec()).await;
    assert!(
        matches!(result, Err(P2pError::NetworkStopped)),
        "{result:?}"
    );

    let _net_b = b.start(&[&a]).await?;
    let started = Instant::now();
    loop {
        // `a` may first notice that the old connection closed.
        match net_a.request(b.peer_id(), b"after".to_vec()).await {
            Ok(response) => break assert_eq!(response, b"re:after"),
            Err(e) if started.elapsed() < TIMEOUT => eprintln!("retrying: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

//! The chaos run's clients: each owns one dev account and sends transfers in nonce
//! order through random nodes, the way a wallet does across a failover: when a
//! node errs or does not answer, it resends the same signed transaction elsewhere
//! until some node answers with its hash. A resend of something already committed
//! must be answered with the hash (invariant 3's idempotent side).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use jsonrpsee::{
    core::{ClientError, client::ClientT},
    http_client::{HttpClient, HttpClientBuilder},
    rpc_params,
};
use parking_lot::Mutex;

use super::{Rng, history::History};
use crate::client::signed_transfer;

/// Where the transfers go.
const SINK: Address = Address::repeat_byte(0xc4);

/// Answers that mean "not now, try again" rather than "never".
const RETRYABLE: [&str; 4] = ["no leader", "not the leader", "already known", "retry"];

/// Runs one client until `stop`; records into `history`.
pub(super) async fn client(
    signer: PrivateKeySigner,
    urls: Vec<String>,
    mut rng: Rng,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
) -> eyre::Result<()> {
    let nodes: Vec<HttpClient> = urls
        .iter()
        .map(|url| {
            HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(10))
                .build(url)
        })
        .collect::<Result<_, _>>()?;
    let sender = signer.address();
    let record = |f: &mut dyn FnMut(&mut History)| f(&mut history.lock());
    let mut nonce = 0;
    while !stop.load(Ordering::Relaxed) {
        let (hash, raw) = signed_transfer(&signer, nonce, SINK)?;
        record(&mut |h| {
            h.sent.insert(hash, (sender, nonce));
        });
        let mut resent = false;
        loop {
            let node = rng.below(nodes.len() as u64) as usize;
            let answer: Result<B256, ClientError> = nodes[node]
                .request("eth_sendRawTransaction", rpc_params![raw.clone()])
                .await;
            match answer {
                Ok(answered) if answered == hash => {
                    record(&mut |h| {
                        h.acked.insert(hash);
                    });
                    break;
                }
                Ok(other) => {
                    record(&mut |h| {
                        h.violations.push(format!(
                            "node at {} answered {other} for {hash}",
                            urls[node]
                        ))
                    });
                    break;
                }
                Err(ClientError::Call(e)) if !RETRYABLE.iter().any(|r| e.message().contains(r)) => {
                    // A valid transfer, or a resend of one already committed, was
                    // refused for good: a broken promise either way.
                    record(&mut |h| {
                        h.violations.push(format!(
                            "{} refused {hash} (nonce {nonce} of {sender}{}): {}",
                            urls[node],
                            if resent { ", a resend" } else { "" },
                            e.message()
                        ))
                    });
                    return Ok(());
                }
                Err(_) => {}
            }
            if stop.load(Ordering::Relaxed) {
                record(&mut |h| {
                    h.unanswered.insert(hash);
                });
                return Ok(());
            }
            resent = true;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        nonce += 1;
    }
    Ok(())
}

//! The transfers a throughput run sends, signed before the clock starts.

use std::ops::Range;

use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_signer_local::PrivateKeySigner;
use baton_primitives::dev_accounts;

use crate::client::signed_transfer;

/// For each sending account, its transfers in nonce order as (hash, raw).
pub(crate) type Queues = Vec<Vec<(B256, Bytes)>>;

/// Transfers of 1 wei from each of the first `accounts` dev accounts, one per nonce
/// in `nonces`; to one sink address, or (`fresh`) each to an address never used
/// before, so every transfer creates an account.
pub(crate) fn sign(accounts: u32, nonces: Range<u64>, fresh: bool) -> eyre::Result<Queues> {
    let sink = Address::repeat_byte(0xbe);
    let signers: Vec<PrivateKeySigner> = dev_accounts(accounts)
        .into_iter()
        .map(|account| PrivateKeySigner::from_bytes(&account.private_key))
        .collect::<Result<_, _>>()?;
    let nonces = &nonces;
    // Signing is CPU-bound: spread the senders over the cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        let workers: Vec<_> = signers
            .chunks(signers.len().div_ceil(threads).max(1))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|signer| {
                            nonces
                                .clone()
                                .map(|nonce| {
                                    let to = if fresh {
                                        fresh_recipient(signer.address(), nonce)
                                    } else {
                                        sink
                                    };
                                    signed_transfer(signer, nonce, to)
                                })
                                .collect::<eyre::Result<Vec<_>>>()
                        })
                        .collect::<eyre::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut queues = Vec::with_capacity(signers.len());
        for worker in workers {
            queues.extend(
                worker
                    .join()
                    .map_err(|_| eyre::eyre!("a signing thread panicked"))??,
            );
        }
        Ok(queues)
    })
}

/// An address no one has used: derived from the sender and nonce.
fn fresh_recipient(sender: Address, nonce: u64) -> Address {
    let mut seed = sender.to_vec();
    seed.extend_from_slice(&nonce.to_be_bytes());
    Address::from_slice(&keccak256(seed)[12..])
}

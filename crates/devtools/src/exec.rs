//! `baton bench exec`: the upper bound of one node's execution path.
//!
//! Pre-signed transfers are executed, sealed and written as a leader's state
//! machine does it (execute each transaction once, seal each block once, one
//! write batch per block), on one thread, with no Raft, network or RPC, on a
//! store in memory (`/dev/shm`, where there is one). What `bench tps` measures on a
//! cluster can at most reach this; the gap is replication, RPC and the client.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use alloy_consensus::{TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, Bytes};
use baton_execution::{BlockBuilder, TxError, start_on, write_genesis, write_sealed};
use baton_primitives::{ChainSpec, SealedBlock, dev_accounts};
use baton_storage::Store;
use clap::Args;
use eyre::{bail, eyre};

use crate::tps::{sign, watch};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Sending accounts; their transfers are interleaved, one per account in turn.
    #[arg(long, default_value_t = 64)]
    pub accounts: u32,
    /// Transfers in all.
    #[arg(long, default_value_t = 20_000)]
    pub transfers: u64,
    /// Block gas limit.
    #[arg(long, default_value_t = 1_000_000_000)]
    pub gas_limit: u64,
    /// Transfers per block (a block also ends when full): the cluster's blocks
    /// under load hold a few thousand.
    #[arg(long, default_value_t = 4_000)]
    pub block_transfers: usize,
    /// Each transfer to an address never used before (each creates an account).
    #[arg(long)]
    pub fresh_recipients: bool,
    /// Where the store lives [default: a temporary dir in /dev/shm, else in the
    /// system's temporary dir].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also report every run of this many transfers on its own (rounded to whole
    /// blocks), to show how the cost of a transfer changes as the state grows;
    /// 0 reports the whole run only.
    #[arg(long, default_value_t = 0)]
    pub window: usize,
}

/// Where the time of a run went.
#[derive(Debug, Default, Clone, Copy)]
struct Spent {
    execute: Duration,
    seal: Duration,
    write: Duration,
    blocks: u64,
}

pub fn exec(args: ExecArgs) -> eyre::Result<()> {
    if args.accounts == 0 || args.transfers == 0 || args.block_transfers == 0 {
        bail!("--accounts, --transfers and --block-transfers must be above zero");
    }
    let per_account = args.transfers.div_ceil(u64::from(args.accounts));
    let queues = sign::sign(args.accounts, 0..per_account, args.fresh_recipients)?;
    let senders: Vec<Address> = dev_accounts(args.accounts)
        .into_iter()
        .map(|a| a.address)
        .collect();
    // The order a leader sees from many senders at once: one from each in turn.
    let order: Vec<(Bytes, Address)> = (0..per_account as usize)
        .flat_map(|nonce| {
            queues
                .iter()
                .zip(&senders)
                .map(move |(queue, sender)| (queue[nonce].1.clone(), *sender))
        })
        .collect();

    let (_temp, dir) = match &args.data_dir {
        Some(dir) => (None, dir.clone()),
        None => {
            let temp = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir())?;
            let dir = temp.path().to_path_buf();
            (Some(temp), dir)
        }
    };
    let store = Store::open(&dir)?;
    let mut spec = ChainSpec::dev_with_accounts(args.accounts);
    spec.gas_limit = args.gas_limit;
    spec.header.gas_limit = args.gas_limit;
    write_genesis(&store, &spec)?;
    let mut head = store
        .block(0)?
        .ok_or_else(|| eyre!("genesis was not written"))?;

    // What the receiving node's RPC workers do for each transfer, in parallel,
    // before the sequencer sees it: decode and recover the sender.
    let recovering = Instant::now();
    for (raw, sender) in &order {
        let tx = TxEnvelope::decode_2718(&mut raw.as_ref())?;
        if tx.recover_signer()? != *sender {
            bail!("transfer {} recovers to another sender", tx.tx_hash());
        }
    }
    let recover = recovering.elapsed();

    let began = Instant::now();
    let mut spent = Spent::default();
    let mut window = Window::open(0, &spent);
    let mut windows = Vec::new();
    let mut txs = order.iter().peekable();
    while txs.peek().is_some() {
        let start = start_on(
            &head,
            (head.header.timestamp + 1) * 1000,
            args.gas_limit,
            Address::ZERO,
        );
        let start_number = start.number;
        let mut builder = BlockBuilder::new(store.clone(), spec.chain_id, start);
        let executing = Instant::now();
        while builder.txs().len() < args.block_transfers
            && let Some((raw, sender)) = txs.peek()
        {
            match builder.execute(raw, *sender).err() {
                None => {
                    txs.next();
                }
                Some(TxError::BlockFull) if !builder.txs().is_empty() => break,
                Some(refused) => bail!("transfer refused in block {start_number}: {refused}"),
            }
        }
        spent.execute += executing.elapsed();
        head = seal_and_write(&store, &builder, &head, &mut spent)?;
        let done = order.len() - txs.len();
        if args.window > 0 && (done - window.from >= args.window || txs.peek().is_none()) {
            let closed = window.close(done, &spent);
            println!("{closed}");
            windows.push(closed);
            window = Window::open(done, &spent);
        }
    }
    let total = began.elapsed();

    for sender in &senders {
        let nonce = store.account(*sender)?.map_or(0, |a| a.nonce);
        if nonce != per_account {
            bail!("sender {sender} ends at nonce {nonce}, not {per_account}: a transfer was lost");
        }
    }
    report(&args, order.len(), total, recover, &spent, &dir);
    if let [first, .., last] = windows.as_slice() {
        println!(
            "last window ÷ first: {:.2} of the rate on the thread, {:.2} of the process's CPU \
             per transfer",
            last.rate() / first.rate(),
            last.cpu_per_transfer() / first.cpu_per_transfer()
        );
    }
    Ok(())
}

/// A run of transfers reported on its own (`--window`).
#[derive(Debug, Clone, Copy)]
struct Window {
    from: usize,
    to: usize,
    began: Instant,
    wall: Duration,
    /// The process's CPU seconds at the start, then spent within: RocksDB's
    /// background flushes and compactions count here, not on the thread.
    cpu: f64,
    spent: Spent,
}

impl Window {
    fn open(from: usize, spent: &Spent) -> Self {
        Self {
            from,
            to: from,
            began: Instant::now(),
            wall: Duration::ZERO,
            cpu: process_cpu(),
            spent: *spent,
        }
    }

    fn close(self, to: usize, spent: &Spent) -> Self {
        Self {
            to,
            wall: self.began.elapsed(),
            cpu: process_cpu() - self.cpu,
            spent: Spent {
                execute: spent.execute - self.spent.execute,
                seal: spent.seal - self.spent.seal,
                write: spent.write - self.spent.write,
                blocks: spent.blocks - self.spent.blocks,
            },
            ..self
        }
    }

    fn transfers(&self) -> f64 {
        (self.to - self.from) as f64
    }

    fn rate(&self) -> f64 {
        self.transfers() / self.wall.as_secs_f64()
    }

    fn cpu_per_transfer(&self) -> f64 {
        self.cpu * 1e6 / self.transfers()
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / self.transfers();
        write!(
            f,
            "transfers {}..{}: {:.0}/s on the thread; per transfer: execute {:.1} µs, seal {:.1} \
             µs, write {:.1} µs; the process's CPU {:.1} µs",
            self.from,
            self.to,
            self.rate(),
            per(self.spent.execute),
            per(self.spent.seal),
            per(self.spent.write),
            self.cpu_per_transfer()
        )
    }
}

/// CPU seconds this process has used, on all its threads.
fn process_cpu() -> f64 {
    watch::usage(std::process::id()).cpu_seconds
}

/// Seals the open block once and writes it in one batch, as the leader's state
/// machine does; returns the new head.
fn seal_and_write(
    store: &Store,
    builder: &BlockBuilder,
    head: &SealedBlock,
    spent: &mut Spent,
) -> eyre::Result<SealedBlock> {
    let sealing = Instant::now();
    let outcome = builder.seal(&head.header)?;
    spent.seal += sealing.elapsed();
    let writing = Instant::now();
    let mut write = store.chain_write();
    write_sealed(&mut write, &outcome)?;
    write.commit()?;
    spent.write += writing.elapsed();
    spent.blocks += 1;
    Ok(outcome.block)
}

fn report(
    args: &ExecArgs,
    transfers: usize,
    total: Duration,
    recover: Duration,
    spent: &Spent,
    dir: &std::path::Path,
) {
    let per = |d: Duration| d.as_secs_f64() * 1e6 / transfers as f64;
    println!(
        "{transfers} transfers from {} accounts in {} blocks of up to {} (gas limit {}), on one \
         thread, store in {}",
        args.accounts,
        spent.blocks,
        args.block_transfers,
        args.gas_limit,
        dir.display()
    );
    println!(
        "{:.0} transfers/s: the execution path's upper bound (no Raft, network or RPC)",
        transfers as f64 / total.as_secs_f64()
    );
    println!(
        "with the sender's recovery on the same core ({:.1} µs per transfer; the RPC workers do it \
         in parallel): {:.0} transfers/s",
        per(recover),
        transfers as f64 / (total + recover).as_secs_f64()
    );
    println!(
        "per transfer: execute {:.1} µs, seal {:.1} µs, write {:.1} µs; per block: seal {:.1} ms, \
         write {:.1} ms",
        per(spent.execute),
        per(spent.seal),
        per(spent.write),
        spent.seal.as_secs_f64() * 1e3 / spent.blocks as f64,
        spent.write.as_secs_f64() * 1e3 / spent.blocks as f64,
    );
    println!("every transfer executed once: each sender's nonce is its transfer count");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every transfer is executed once across blocks cut by count: the run ends
    /// with each sender's nonce at its transfer count, or fails.
    #[test]
    fn transfers_run_through_several_blocks_and_all_land() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = ExecArgs {
            accounts: 4,
            transfers: 402,
            gas_limit: 30_000_000,
            block_transfers: 50,
            fresh_recipients: true,
            data_dir: Some(dir.path().to_path_buf()),
            window: 100,
        };
        exec(args).expect("every transfer lands");
        let store = Store::open(dir.path()).expect("reopen");
        let (number, _) = store.head().expect("read").expect("a head");
        // 404 transfers (101 per sender), 50 per block: 8 full blocks and 4 over.
        assert_eq!(number, 9);
        let last = store.block(number).expect("read").expect("the head");
        assert_eq!(last.header.gas_used, 4 * 21_000);
    }

    #[test]
    fn nothing_to_run_is_refused() {
        let args = ExecArgs {
            accounts: 4,
            transfers: 0,
            gas_limit: 30_000_000,
            block_transfers: 50,
            fresh_recipients: false,
            data_dir: None,
            window: 0,
        };
        assert!(exec(args).is_err());
    }
}

//! Genesis files for local clusters: the dev chain with another gas limit, or with
//! many more accounts (filler state, for benchmarks at a realistic state size).
//! Written as a stream, so a million accounts never sit in memory.

use std::{
    io::{BufWriter, Write},
    path::Path,
};

use alloy_primitives::{Address, U256, keccak256};
use baton_primitives::{
    dev_accounts,
    genesis::{DEV_BALANCE, DEV_CHAIN_ID},
};
use clap::Args;

/// What a generated genesis holds.
#[derive(Debug, Clone, Args)]
pub struct GenesisArgs {
    /// Block gas limit of the chain [default: the dev chain's, 150M].
    #[arg(long)]
    pub gas_limit: Option<u64>,
    /// Filler accounts (1 wei each) beside the funded dev accounts: state to
    /// measure against.
    #[arg(long, default_value_t = 0)]
    pub extra_accounts: u64,
}

impl GenesisArgs {
    /// Whether these settings differ from the built-in dev genesis.
    pub fn is_custom(&self) -> bool {
        self.gas_limit.is_some() || self.extra_accounts > 0
    }
}

/// The address of filler account `index`: deterministic, spread over the trie.
pub fn filler_address(index: u64) -> Address {
    Address::from_slice(&keccak256(index.to_be_bytes())[12..])
}

/// Writes a geth-style genesis to `path`: the dev chain id, `gas_limit`, the
/// first `dev` dev accounts with 10,000 ETH each, and `extra` filler accounts.
pub fn write_file(path: &Path, gas_limit: u64, dev: u32, extra: u64) -> eyre::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    write!(
        out,
        r#"{{"config":{{"chainId":{DEV_CHAIN_ID}}},"gasLimit":"{gas_limit:#x}","baseFeePerGas":"0x3b9aca00","timestamp":"0x0","alloc":{{"#
    )?;
    let balance = |value: U256| format!("{value:#x}");
    let mut first = true;
    let mut entry = |out: &mut BufWriter<std::fs::File>, address: Address, wei: String| {
        let comma = if std::mem::take(&mut first) { "" } else { "," };
        write!(out, r#"{comma}"{address:#x}":{{"balance":"{wei}"}}"#)
    };
    for account in dev_accounts(dev) {
        entry(&mut out, account.address, balance(DEV_BALANCE))?;
    }
    for index in 0..extra {
        entry(&mut out, filler_address(index), "0x1".into())?;
    }
    writeln!(out, "}}}}")?;
    out.flush()?;
    Ok(())
}

//! Genesis files for local clusters: the dev chain with another gas limit, or with
//! many more accounts (filler state, for benchmarks at a realistic state size).
//! Written as a stream, so a million accounts never sit in memory.

use std::{
    io::{BufWriter, Write},
    path::Path,
};

use alloy_primitives::{Address, U256, keccak256};
use baton_primitives::genesis::{
    DEV_ACCOUNTS, DEV_BALANCE, DEV_CHAIN_ID, DEV_GAS_LIMIT, DEV_MNEMONIC, mnemonic_accounts,
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

/// A dev chain to write as a genesis file.
#[derive(Debug, Clone)]
pub struct DevChain {
    pub chain_id: u64,
    pub gas_limit: u64,
    /// The funded accounts are the first `accounts` of this mnemonic.
    pub mnemonic: String,
    pub accounts: u32,
    /// Each funded account's balance, in wei.
    pub balance: U256,
    /// Filler accounts (1 wei each) beside the funded ones.
    pub extra: u64,
}

impl Default for DevChain {
    /// The built-in dev chain's parameters.
    fn default() -> Self {
        Self {
            chain_id: DEV_CHAIN_ID,
            gas_limit: DEV_GAS_LIMIT,
            mnemonic: DEV_MNEMONIC.to_string(),
            accounts: DEV_ACCOUNTS,
            balance: DEV_BALANCE,
            extra: 0,
        }
    }
}

/// Writes `chain` to `path` as a geth-style genesis, streamed.
pub fn write_file(path: &Path, chain: &DevChain) -> eyre::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    write!(
        out,
        r#"{{"config":{{"chainId":{}}},"gasLimit":"{:#x}","baseFeePerGas":"0x3b9aca00","timestamp":"0x0","alloc":{{"#,
        chain.chain_id, chain.gas_limit
    )?;
    let mut first = true;
    let mut entry = |out: &mut BufWriter<std::fs::File>, address: Address, wei: U256| {
        let comma = if std::mem::take(&mut first) { "" } else { "," };
        write!(out, r#"{comma}"{address:#x}":{{"balance":"{wei:#x}"}}"#)
    };
    for account in mnemonic_accounts(&chain.mnemonic, chain.accounts)? {
        entry(&mut out, account.address, chain.balance)?;
    }
    for index in 0..chain.extra {
        entry(&mut out, filler_address(index), U256::from(1))?;
    }
    writeln!(out, "}}}}")?;
    out.flush()?;
    Ok(())
}

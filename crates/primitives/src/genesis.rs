//! Genesis and chain spec: a geth-style `genesis.json` (`config.chainId`, `alloc`,
//! `gasLimit`, `timestamp`, `baseFeePerGas`) and the genesis header it defines.
//!
//! Every member must start from the same genesis; its hash identifies the chain,
//! and a data dir written for another genesis is refused at start-up.

use std::path::Path;

use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header, constants::EMPTY_WITHDRAWALS};
use alloy_eips::{eip1559::INITIAL_BASE_FEE, eip7685::EMPTY_REQUESTS_HASH};
pub use alloy_genesis::Genesis;
use alloy_genesis::GenesisAccount;
use alloy_primitives::{Address, B256, Bloom, U256};
use alloy_signer_local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};
use alloy_trie::{EMPTY_ROOT_HASH, TrieAccount, root::state_root_unhashed};

/// Chain id of the built-in development genesis.
pub const DEV_CHAIN_ID: u64 = 7331;
/// Gas limit of the built-in development genesis. L2 blocks carry far more than
/// L1's 30M (OP chains run 60M-plus per 2 s, Base more): at 30M a 1 s block holds
/// only ~1,400 transfers, which caps a sequencer below what it can order.
pub const DEV_GAS_LIMIT: u64 = 150_000_000;
/// The well-known development mnemonic (anvil's, hardhat's): its keys are public,
/// so the dev chain is for local use only.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";
/// How many dev accounts the built-in genesis funds unless told otherwise.
pub const DEV_ACCOUNTS: u32 = 10;
/// Each dev account starts with 10,000 ETH.
pub const DEV_BALANCE: U256 = U256::from_limbs([0x19e0_c9ba_b240_0000, 0x21e, 0, 0]);

/// A funded development account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevAccount {
    pub address: Address,
    pub private_key: B256,
}

/// The first `count` accounts of [`DEV_MNEMONIC`] (BIP-44 path m/44'/60'/0'/0/i).
pub fn dev_accounts(count: u32) -> Vec<DevAccount> {
    (0..count)
        .map(|index| {
            let signer: PrivateKeySigner = MnemonicBuilder::<English>::default()
                .phrase(DEV_MNEMONIC)
                .index(index)
                .and_then(|builder| builder.build())
                .expect("the dev mnemonic and a u32 index always derive a key");
            DevAccount {
                address: signer.address(),
                private_key: B256::from_slice(&signer.to_bytes()[..]),
            }
        })
        .collect()
}

/// A genesis file could not be read or does not describe a usable chain.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read genesis file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("genesis file {path} is not valid geth-style JSON: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("genesis: config.chainId must be set and non-zero")]
    NoChainId,
    #[error("genesis: gasLimit must be at least 21000, got {0}")]
    GasLimitTooLow(u64),
}

/// Everything about the chain that follows from its genesis.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    pub chain_id: u64,
    pub gas_limit: u64,
    pub genesis: Genesis,
    pub genesis_header: Header,
    pub genesis_hash: B256,
}

impl ChainSpec {
    /// The built-in development chain, funding the first [`DEV_ACCOUNTS`] dev accounts.
    pub fn dev() -> Self {
        Self::dev_with_accounts(DEV_ACCOUNTS)
    }

    /// The built-in development chain, funding the first `accounts` dev accounts
    /// with 10,000 ETH each.
    pub fn dev_with_accounts(accounts: u32) -> Self {
        let mut genesis = Genesis::default();
        genesis.config.chain_id = DEV_CHAIN_ID;
        genesis.gas_limit = DEV_GAS_LIMIT;
        genesis.base_fee_per_gas = Some(u128::from(INITIAL_BASE_FEE));
        genesis.alloc = dev_accounts(accounts)
            .into_iter()
            .map(|account| {
                (
                    account.address,
                    GenesisAccount::default().with_balance(DEV_BALANCE),
                )
            })
            .collect();
        Self::from_genesis(genesis).expect("the built-in dev genesis is valid")
    }

    /// Reads a geth-style `genesis.json`.
    pub fn from_file(path: &Path) -> Result<Self, GenesisError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            GenesisError::Parse { source, .. } => GenesisError::Parse {
                path: shown,
                source,
            },
            other => other,
        })
    }

    /// Parses geth-style genesis JSON. `config.chainId` must be given: a default
    /// (alloy's is 1, mainnet's) would make every signed transaction replayable.
    pub fn from_json(text: &str) -> Result<Self, GenesisError> {
        let parse = |source| GenesisError::Parse {
            path: "<json>".to_string(),
            source,
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(parse)?;
        if value
            .pointer("/config/chainId")
            .is_none_or(serde_json::Value::is_null)
        {
            return Err(GenesisError::NoChainId);
        }
        Self::from_genesis(serde_json::from_value(value).map_err(parse)?)
    }

    /// Validates `genesis` and derives its header.
    pub fn from_genesis(genesis: Genesis) -> Result<Self, GenesisError> {
        if genesis.config.chain_id == 0 {
            return Err(GenesisError::NoChainId);
        }
        if genesis.gas_limit < 21_000 {
            return Err(GenesisError::GasLimitTooLow(genesis.gas_limit));
        }
        let genesis_header = genesis_header(&genesis);
        Ok(Self {
            chain_id: genesis.config.chain_id,
            gas_limit: genesis.gas_limit,
            genesis_hash: genesis_header.hash_slow(),
            genesis_header,
            genesis,
        })
    }
}

/// The genesis header: block 0 with the allocation's state root and the fork
/// fields of current mainnet rules (London through Prague), so clients that
/// check header shape accept it.
fn genesis_header(genesis: &Genesis) -> Header {
    let state_root = if genesis.alloc.is_empty() {
        EMPTY_ROOT_HASH
    } else {
        state_root_unhashed(
            genesis
                .alloc
                .iter()
                .map(|(address, account)| (*address, TrieAccount::from(account.clone()))),
        )
    };
    Header {
        parent_hash: B256::ZERO,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: genesis.coinbase,
        state_root,
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        logs_bloom: Bloom::ZERO,
        difficulty: genesis.difficulty,
        number: 0,
        gas_limit: genesis.gas_limit,
        gas_used: 0,
        timestamp: genesis.timestamp,
        extra_data: genesis.extra_data.clone(),
        mix_hash: genesis.mix_hash,
        nonce: genesis.nonce.into(),
        base_fee_per_gas: Some(
            genesis
                .base_fee_per_gas
                .map_or(INITIAL_BASE_FEE, |fee| fee.min(u128::from(u64::MAX)) as u64),
        ),
        withdrawals_root: Some(EMPTY_WITHDRAWALS),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        requests_hash: Some(EMPTY_REQUESTS_HASH),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_accounts_are_the_well_known_ones() {
        let accounts = dev_accounts(2);
        assert_eq!(
            accounts[0].address,
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
                .parse::<Address>()
                .expect("address")
        );
        assert_eq!(
            accounts[0].private_key,
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
                .parse::<B256>()
                .expect("key")
        );
        assert_eq!(
            accounts[1].address,
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                .parse::<Address>()
                .expect("address")
        );
        assert_eq!(
            DEV_BALANCE,
            U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u64))
        );
    }

    #[test]
    fn dev_genesis_is_stable_and_valid() {
        let a = ChainSpec::dev();
        let b = ChainSpec::dev();
        assert_eq!(a.genesis_hash, b.genesis_hash);
        assert_eq!(a.chain_id, DEV_CHAIN_ID);
        assert_eq!(a.genesis_header.number, 0);
    }

    #[test]
    fn geth_style_file_is_read_and_alloc_changes_the_state_root() {
        let json = r#"{
            "config": { "chainId": 901 },
            "gasLimit": "0x1c9c380",
            "timestamp": "0x0",
            "alloc": { "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266": { "balance": "0x3635c9adc5dea00000" } }
        }"#;
        let spec = ChainSpec::from_json(json).expect("valid");
        assert_eq!(spec.chain_id, 901);
        assert_eq!(spec.gas_limit, 30_000_000);
        assert_ne!(spec.genesis_header.state_root, EMPTY_ROOT_HASH);
    }

    #[test]
    fn missing_chain_id_and_garbage_are_clear_errors() {
        assert!(matches!(
            ChainSpec::from_json(r#"{"gasLimit":"0x1c9c380"}"#),
            Err(GenesisError::NoChainId)
        ));
        assert!(matches!(
            ChainSpec::from_json(r#"{"config":{"chainId":0},"gasLimit":"0x1c9c380"}"#),
            Err(GenesisError::NoChainId)
        ));

        let dir = std::env::temp_dir().join(format!("baton-genesis-{}", std::process::id()));
        std::fs::write(&dir, "{ not json").expect("write");
        let err = ChainSpec::from_file(&dir).expect_err("garbage");
        assert!(
            err.to_string().contains("not valid geth-style JSON"),
            "{err}"
        );
        let _ = std::fs::remove_file(&dir);
    }
}

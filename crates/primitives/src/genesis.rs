//! Genesis and chain spec: a geth-style `genesis.json` (`config.chainId`, `alloc`,
//! `gasLimit`, `timestamp`, `baseFeePerGas`) and the genesis header it defines.
//!
//! Every member must start from the same genesis; its fingerprint identifies the
//! chain, and a data dir written for another genesis is refused at start-up. The
//! allocation is streamed (a file of a million accounts is read account by
//! account, never held whole); its state root is known once it is written.

use std::{
    collections::BTreeMap,
    io::{BufReader, Read},
    path::{Path, PathBuf},
    sync::Arc,
};

use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header, constants::EMPTY_WITHDRAWALS};
use alloy_eips::{eip1559::INITIAL_BASE_FEE, eip7685::EMPTY_REQUESTS_HASH};
pub use alloy_genesis::{Genesis, GenesisAccount};
use alloy_primitives::{Address, B256, Bloom, U256, keccak256};
use alloy_signer_local::coins_bip39::{English, Mnemonic};
use alloy_trie::EMPTY_ROOT_HASH;
use coins_bip32::prelude::{
    Parent, SigningKey, XKeyInfo,
    k256::{FieldBytes, NonZeroScalar, Scalar, elliptic_curve::PrimeField},
};
use hmac::{Hmac, Mac};
use serde::{
    Deserializer,
    de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor},
};
use sha2::Sha512;

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
    mnemonic_accounts(DEV_MNEMONIC, count).expect("the dev mnemonic derives its accounts")
}

/// The first `count` accounts of the BIP-39 `phrase` (English word list, BIP-44
/// path m/44'/60'/0'/0/i), as anvil and hardhat derive them.
///
/// The seed and the path's parent key are derived once; each account is then one
/// BIP-32 child step and one public key from libsecp256k1 (its precomputed tables
/// make that about 1.6× cheaper than k256's generic multiplication, which
/// coins-bip32 does twice), spread over the machine's cores, so a devnet of 100,000
/// accounts starts in seconds.
pub fn mnemonic_accounts(phrase: &str, count: u32) -> Result<Vec<DevAccount>, GenesisError> {
    let parent = Mnemonic::<English>::new_from_phrase(phrase)
        .and_then(|mnemonic| mnemonic.derive_key("m/44'/60'/0'/0", None))
        .map_err(|e| GenesisError::Mnemonic(e.to_string()))?;
    let chain_code = AsRef::<XKeyInfo>::as_ref(&parent).chain_code.0;
    let parent_key: &SigningKey = parent.as_ref();
    let parent_secret = *parent_key.as_nonzero_scalar().as_ref();
    let parent_public = parent_key.verifying_key().to_encoded_point(true);
    let derive = |index: u32| {
        let secret = child_secret(&chain_code, parent_public.as_bytes(), parent_secret, index)
            .unwrap_or_else(|| {
                // I_L out of range (odds about 2^-127): BIP-32 moves to the next
                // index, which coins-bip32 (alloy's) implements; take its answer.
                let child = parent
                    .derive_child(index)
                    .expect("a non-hardened child of a valid key derives");
                *AsRef::<SigningKey>::as_ref(&child)
                    .as_nonzero_scalar()
                    .as_ref()
            });
        let private_key = B256::from_slice(&secret.to_bytes());
        let key = secp256k1::SecretKey::from_byte_array(&private_key.0)
            .expect("a non-zero scalar below the order is a secret key");
        let public = secp256k1::PublicKey::from_secret_key_global(&key).serialize_uncompressed();
        DevAccount {
            address: Address::from_raw_public_key(&public[1..]),
            private_key,
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let per_thread = count.div_ceil(threads.max(1)).max(1);
    Ok(std::thread::scope(|scope| {
        let workers: Vec<_> = (0..count)
            .step_by(per_thread as usize)
            .map(|first| {
                let last = first.saturating_add(per_thread).min(count);
                scope.spawn(move || (first..last).map(derive).collect::<Vec<_>>())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a derivation thread does not panic"))
            .collect()
    }))
}

/// BIP-32's private child key for the non-hardened `index`: with
/// `I = HMAC-SHA512(chain code, parent public key ‖ index)`, the child is
/// `I_L + parent secret (mod n)`; `None` when `I_L ≥ n` or the sum is zero.
fn child_secret(
    chain_code: &[u8; 32],
    parent_public: &[u8],
    parent_secret: Scalar,
    index: u32,
) -> Option<Scalar> {
    let mut mac =
        Hmac::<Sha512>::new_from_slice(chain_code).expect("HMAC takes keys of any length");
    mac.update(parent_public);
    mac.update(&index.to_be_bytes());
    let i = mac.finalize().into_bytes();
    let tweak: Option<Scalar> = Scalar::from_repr(FieldBytes::clone_from_slice(&i[..32])).into();
    let child = tweak? + parent_secret;
    Option::<NonZeroScalar>::from(NonZeroScalar::new(child)).map(|child| *child.as_ref())
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
    #[error("not a usable BIP-39 mnemonic (English words, 12 to 24 of them): {0}")]
    Mnemonic(String),
    #[error("genesis: config.chainId must be set and non-zero")]
    NoChainId,
    #[error("genesis: gasLimit must be at least 21000, got {0}")]
    GasLimitTooLow(u64),
    #[error("genesis: timestamp {0} is after the year 9999 (at most {LATEST_TIMESTAMP})")]
    TimestampTooLate(u64),
    #[error("genesis: alloc key {0:?} is not an address")]
    BadAddress(String),
    /// Whoever took the accounts could not store one.
    #[error("genesis: {0}")]
    Sink(String),
}

/// The latest genesis timestamp taken: 9999-12-31T23:59:59Z.
pub const LATEST_TIMESTAMP: u64 = 253_402_300_799;

/// Where the genesis allocation comes from.
#[derive(Debug, Clone)]
pub enum Alloc {
    /// The first `count` accounts of `mnemonic`, 10,000 ETH each.
    Dev { mnemonic: String, count: u32 },
    /// The `alloc` of a geth-style genesis file, read as a stream (a file of a
    /// million accounts is never held in memory).
    File(PathBuf),
    /// Accounts given in memory.
    Accounts(BTreeMap<Address, GenesisAccount>),
    /// A dev allocation whose accounts were already derived (a node that unlocks
    /// them derives them once, not again to write genesis), 10,000 ETH each.
    Derived(Arc<[Address]>),
}

/// Everything about the chain that follows from its genesis.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    pub chain_id: u64,
    pub gas_limit: u64,
    /// Block 0's header, but for its state root: the allocation's root, known once
    /// the allocation is written (`EMPTY_ROOT_HASH` here).
    pub header: Header,
    pub alloc: Alloc,
    /// What identifies this genesis (keccak of the file, or of the dev
    /// parameters): a data dir written for another genesis is refused.
    pub fingerprint: B256,
}

impl ChainSpec {
    /// The built-in development chain, funding the first [`DEV_ACCOUNTS`] dev accounts.
    pub fn dev() -> Self {
        Self::dev_with_accounts(DEV_ACCOUNTS)
    }

    /// The built-in development chain, funding the first `accounts` dev accounts
    /// with 10,000 ETH each.
    pub fn dev_with_accounts(accounts: u32) -> Self {
        Self::dev_with(DEV_MNEMONIC, accounts).expect("the built-in dev genesis is valid")
    }

    /// The built-in development chain, funding the first `accounts` accounts of
    /// `mnemonic` with 10,000 ETH each.
    pub fn dev_with(mnemonic: &str, accounts: u32) -> Result<Self, GenesisError> {
        Mnemonic::<English>::new_from_phrase(mnemonic)
            .map_err(|e| GenesisError::Mnemonic(e.to_string()))?;
        let mut genesis = Genesis::default();
        genesis.config.chain_id = DEV_CHAIN_ID;
        genesis.gas_limit = DEV_GAS_LIMIT;
        genesis.base_fee_per_gas = Some(u128::from(INITIAL_BASE_FEE));
        let mut fingerprint = b"baton-dev-genesis".to_vec();
        fingerprint.extend_from_slice(&DEV_CHAIN_ID.to_be_bytes());
        fingerprint.extend_from_slice(&DEV_GAS_LIMIT.to_be_bytes());
        fingerprint.extend_from_slice(&accounts.to_be_bytes());
        // The default mnemonic leaves the fingerprint as it always was, so data
        // dirs written before the mnemonic was a setting still start.
        if mnemonic != DEV_MNEMONIC {
            fingerprint.extend_from_slice(mnemonic.as_bytes());
        }
        let alloc = Alloc::Dev {
            mnemonic: mnemonic.to_string(),
            count: accounts,
        };
        Self::new(&genesis, alloc, keccak256(fingerprint))
    }

    /// The same chain, funding `accounts` as derived from a dev allocation's
    /// mnemonic rather than deriving them again when genesis is written. Any other
    /// allocation, or a different number of accounts, is kept as it is.
    pub fn with_derived(mut self, accounts: &[DevAccount]) -> Self {
        if let Alloc::Dev { count, .. } = &self.alloc
            && *count as usize == accounts.len()
        {
            self.alloc = Alloc::Derived(accounts.iter().map(|a| a.address).collect());
        }
        self
    }

    /// Reads a geth-style `genesis.json`'s chain parameters, streaming past its
    /// `alloc` (which [`ChainSpec::for_each_account`] streams again when written).
    pub fn from_file(path: &Path) -> Result<Self, GenesisError> {
        let shown = path.display().to_string();
        let read = |source| GenesisError::Read {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut hashed = HashingReader::new(BufReader::with_capacity(1 << 16, file));
        let mut fields = serde_json::Map::new();
        let parsed = serde_json::Deserializer::from_reader(&mut hashed).deserialize_map(TopLevel {
            fields: &mut fields,
            on_account: None::<&mut fn(Address, GenesisAccount) -> Result<(), String>>,
        });
        parsed.map_err(|source| GenesisError::Parse {
            path: shown.clone(),
            source,
        })?;
        std::io::copy(&mut hashed, &mut std::io::sink()).map_err(read)?;
        let fingerprint = hashed.finish();
        let genesis = chain_fields(fields).map_err(|source| GenesisError::Parse {
            path: shown,
            source,
        })?;
        Self::new(&genesis, Alloc::File(path.to_path_buf()), fingerprint)
    }

    /// Parses geth-style genesis JSON held in memory.
    pub fn from_json(text: &str) -> Result<Self, GenesisError> {
        let parse = |source| GenesisError::Parse {
            path: "<json>".to_string(),
            source,
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(parse)?;
        let serde_json::Value::Object(mut fields) = value else {
            return Err(parse(serde::de::Error::custom("genesis is not an object")));
        };
        let alloc = fields.remove("alloc").unwrap_or_default();
        let alloc: BTreeMap<Address, GenesisAccount> = if alloc.is_null() {
            BTreeMap::new()
        } else {
            serde_json::from_value(alloc).map_err(parse)?
        };
        let genesis = chain_fields(fields).map_err(parse)?;
        Self::new(&genesis, Alloc::Accounts(alloc), keccak256(text))
    }

    /// Validates the chain parameters and derives block 0's header.
    fn new(genesis: &Genesis, alloc: Alloc, fingerprint: B256) -> Result<Self, GenesisError> {
        if genesis.config.chain_id == 0 {
            return Err(GenesisError::NoChainId);
        }
        if genesis.gas_limit < 21_000 {
            return Err(GenesisError::GasLimitTooLow(genesis.gas_limit));
        }
        // Block times are kept in milliseconds: a timestamp must fit 1000 times over.
        if genesis.timestamp > LATEST_TIMESTAMP {
            return Err(GenesisError::TimestampTooLate(genesis.timestamp));
        }
        Ok(Self {
            chain_id: genesis.config.chain_id,
            gas_limit: genesis.gas_limit,
            header: genesis_header(genesis),
            alloc,
            fingerprint,
        })
    }

    /// Hands every account of the allocation to `on_account`, in file order (a
    /// file is streamed), stopping at the first error.
    pub fn for_each_account(
        &self,
        mut on_account: impl FnMut(Address, GenesisAccount) -> Result<(), GenesisError>,
    ) -> Result<(), GenesisError> {
        match &self.alloc {
            Alloc::Dev { mnemonic, count } => {
                for account in mnemonic_accounts(mnemonic, *count)? {
                    on_account(
                        account.address,
                        GenesisAccount::default().with_balance(DEV_BALANCE),
                    )?;
                }
                Ok(())
            }
            Alloc::Derived(addresses) => addresses.iter().try_for_each(|address| {
                on_account(
                    *address,
                    GenesisAccount::default().with_balance(DEV_BALANCE),
                )
            }),
            Alloc::Accounts(accounts) => accounts
                .iter()
                .try_for_each(|(address, account)| on_account(*address, account.clone())),
            Alloc::File(path) => {
                let shown = path.display().to_string();
                let file = std::fs::File::open(path).map_err(|source| GenesisError::Read {
                    path: shown.clone(),
                    source,
                })?;
                let reader = BufReader::with_capacity(1 << 16, file);
                let mut sink_error = None;
                let mut forward = |address, account| {
                    on_account(address, account).map_err(|e| {
                        let message = e.to_string();
                        sink_error = Some(e);
                        message
                    })
                };
                let parsed =
                    serde_json::Deserializer::from_reader(reader).deserialize_map(TopLevel {
                        fields: &mut serde_json::Map::new(),
                        on_account: Some(&mut forward),
                    });
                match (parsed, sink_error) {
                    (_, Some(e)) => Err(e),
                    (Ok(()), None) => Ok(()),
                    (Err(source), None) => Err(GenesisError::Parse {
                        path: shown,
                        source,
                    }),
                }
            }
        }
    }
}

/// The chain parameters of a genesis: every top-level field but `alloc`. A
/// `config.chainId` must be given: a default (alloy's is 1, mainnet's) would make
/// every signed transaction replayable.
fn chain_fields(
    mut fields: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Result<Genesis> {
    fields.remove("alloc");
    let chain_id = fields
        .get("config")
        .and_then(|config| config.get("chainId"))
        .is_some_and(|id| !id.is_null());
    let mut genesis: Genesis = serde_json::from_value(serde_json::Value::Object(fields))?;
    if !chain_id {
        genesis.config.chain_id = 0;
    }
    Ok(genesis)
}

/// Reads through, hashing every byte read (the file's fingerprint).
struct HashingReader<R> {
    inner: R,
    hasher: alloy_primitives::Keccak256,
}

impl<R> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: alloy_primitives::Keccak256::new(),
        }
    }

    fn finish(self) -> B256 {
        self.hasher.finalize()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A genesis file's top-level object: `alloc` entries go to `on_account` one by
/// one (or are skipped), every other field is kept in `fields`.
struct TopLevel<'a, F> {
    fields: &'a mut serde_json::Map<String, serde_json::Value>,
    on_account: Option<&'a mut F>,
}

impl<'de, F> Visitor<'de> for TopLevel<'_, F>
where
    F: FnMut(Address, GenesisAccount) -> Result<(), String>,
{
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a geth-style genesis object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut on_account = self.on_account;
        while let Some(key) = map.next_key::<String>()? {
            if key == "alloc" {
                match on_account.as_deref_mut() {
                    Some(on_account) => map.next_value_seed(AllocSeed(on_account))?,
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            } else {
                let value = map.next_value()?;
                self.fields.insert(key, value);
            }
        }
        Ok(())
    }
}

/// The `alloc` object, handed over account by account.
struct AllocSeed<'a, F>(&'a mut F);

impl<'de, F> DeserializeSeed<'de> for AllocSeed<'_, F>
where
    F: FnMut(Address, GenesisAccount) -> Result<(), String>,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F> Visitor<'de> for AllocSeed<'_, F>
where
    F: FnMut(Address, GenesisAccount) -> Result<(), String>,
{
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an alloc object of address => account")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let hex = key.strip_prefix("0x").unwrap_or(&key);
            let address: Address = hex.parse().map_err(|_| {
                serde::de::Error::custom(format!("alloc key {key:?} is not an address"))
            })?;
            let account: GenesisAccount = map.next_value()?;
            (self.0)(address, account).map_err(serde::de::Error::custom)?;
        }
        Ok(())
    }
}

/// Block 0's header, but for its state root: the fork fields of current mainnet
/// rules (London through Prague), so clients that check header shape accept it.
fn genesis_header(genesis: &Genesis) -> Header {
    Header {
        parent_hash: B256::ZERO,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: genesis.coinbase,
        state_root: EMPTY_ROOT_HASH,
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

    /// The fast child step gives exactly coins-bip32's (alloy's) keys.
    #[test]
    fn accounts_match_the_reference_derivation() {
        use alloy_signer_local::MnemonicBuilder;
        let accounts = mnemonic_accounts(DEV_MNEMONIC, 40).expect("accounts");
        for (index, account) in accounts.iter().enumerate() {
            let signer = MnemonicBuilder::<English>::default()
                .phrase(DEV_MNEMONIC)
                .index(index as u32)
                .expect("index")
                .build()
                .expect("signer");
            assert_eq!(account.address, signer.address(), "account {index}");
            assert_eq!(
                account.private_key,
                B256::from_slice(&signer.credential().to_bytes()),
                "key {index}"
            );
        }
    }

    #[test]
    fn dev_genesis_is_stable_and_valid() {
        let a = ChainSpec::dev();
        let b = ChainSpec::dev();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, ChainSpec::dev_with_accounts(11).fingerprint);
        assert_eq!(a.chain_id, DEV_CHAIN_ID);
        assert_eq!(a.header.number, 0);
        let mut funded = Vec::new();
        a.for_each_account(|address, account| {
            funded.push((address, account.balance));
            Ok(())
        })
        .expect("accounts");
        assert_eq!(funded.len(), DEV_ACCOUNTS as usize);
        assert_eq!(funded[0], (dev_accounts(1)[0].address, DEV_BALANCE));

        // Accounts a node derived to unlock them fund the same genesis.
        let derived = a.clone().with_derived(&dev_accounts(DEV_ACCOUNTS));
        assert!(matches!(derived.alloc, Alloc::Derived(_)));
        assert_eq!(derived.fingerprint, a.fingerprint);
        let mut again = Vec::new();
        derived
            .for_each_account(|address, account| {
                again.push((address, account.balance));
                Ok(())
            })
            .expect("accounts");
        assert_eq!(again, funded);
        let partial = a.with_derived(&dev_accounts(DEV_ACCOUNTS - 1));
        assert!(matches!(partial.alloc, Alloc::Dev { .. }));
    }

    #[test]
    fn geth_style_json_is_read() {
        let json = r#"{
            "config": { "chainId": 901 },
            "gasLimit": "0x1c9c380",
            "timestamp": "0x0",
            "alloc": { "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266": { "balance": "0x3635c9adc5dea00000" } }
        }"#;
        let spec = ChainSpec::from_json(json).expect("valid");
        assert_eq!(spec.chain_id, 901);
        assert_eq!(spec.gas_limit, 30_000_000);
        let mut count = 0;
        spec.for_each_account(|_, _| {
            count += 1;
            Ok(())
        })
        .expect("accounts");
        assert_eq!(count, 1);
    }

    /// Block times are kept in milliseconds: before this was refused, a genesis
    /// timestamp past `u64::MAX / 1000` overflowed when a node opened its chain.
    #[test]
    fn a_timestamp_after_the_year_9999_is_refused() {
        let genesis = |timestamp: u64| {
            format!(
                r#"{{"config": {{"chainId": 901}}, "gasLimit": "0x1c9c380", "timestamp": "{timestamp:#x}", "alloc": {{}}}}"#
            )
        };
        assert!(ChainSpec::from_json(&genesis(LATEST_TIMESTAMP)).is_ok());
        let refused = ChainSpec::from_json(&genesis(u64::MAX)).expect_err("too late");
        assert!(matches!(refused, GenesisError::TimestampTooLate(u64::MAX)));
        assert!(
            refused.to_string().contains("after the year 9999"),
            "{refused}"
        );
    }

    #[test]
    fn a_file_is_streamed_account_by_account_and_fingerprinted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("genesis.json");
        let write = |accounts: u8| {
            let alloc: Vec<String> = (1..=accounts)
                .map(|i| {
                    format!(
                        r#""{:040x}": {{"balance": "0x{i:x}", "storage": {{"0x01": "0x02"}}}}"#,
                        i
                    )
                })
                .collect();
            std::fs::write(
                &path,
                format!(
                    r#"{{"alloc": {{{}}}, "config": {{"chainId": 5}}, "gasLimit": "0x1c9c380"}}"#,
                    alloc.join(",")
                ),
            )
            .expect("write");
        };
        write(3);
        let spec = ChainSpec::from_file(&path).expect("valid");
        assert_eq!(spec.chain_id, 5, "fields after alloc are read too");
        let mut seen = Vec::new();
        spec.for_each_account(|address, account| {
            seen.push((address, account.balance, account.storage_slots().count()));
            Ok(())
        })
        .expect("streamed");
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2], (Address::with_last_byte(3), U256::from(3), 1));
        // A sink error stops the stream and is returned as is.
        let err = spec
            .for_each_account(|_, _| Err(GenesisError::Sink("disk full".into())))
            .expect_err("sink");
        assert!(err.to_string().contains("disk full"), "{err}");
        write(4);
        assert_ne!(
            ChainSpec::from_file(&path).expect("valid").fingerprint,
            spec.fingerprint
        );
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

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("genesis.json");
        std::fs::write(&path, "{ not json").expect("write");
        let err = ChainSpec::from_file(&path).expect_err("garbage");
        assert!(
            err.to_string().contains("not valid geth-style JSON"),
            "{err}"
        );
    }
}

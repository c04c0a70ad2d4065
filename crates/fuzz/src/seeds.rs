//! Well-formed inputs for each target, for mutations to start from.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEip2930, TxEnvelope, TxLegacy};
use alloy_eips::{eip2718::Encodable2718, eip2930::AccessList, eip2930::AccessListItem};
use alloy_network::TxSignerSync;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, hex};
use alloy_signer_local::PrivateKeySigner;
use baton_consensus::{Chunk, Manifest, RaftRequest, RaftResponse, TypeConfig};
use baton_execution::start_on;
use baton_node::config::{MemberEntry, NodeArgs};
use baton_primitives::{
    BlockEnd, SealedBlock, SequencerEntry, TxBatch, codec, dev_accounts, genesis::DEV_CHAIN_ID,
};
use openraft::type_config::alias::{SnapshotMetaOf, VoteOf};

/// A small geth-style genesis with one account of each kind of field.
pub(crate) const GENESIS: &str = r#"{
  "config": {"chainId": 7331, "pragueTime": 0},
  "gasLimit": "0x1c9c380",
  "baseFeePerGas": "0x3b9aca00",
  "timestamp": "0x0",
  "extraData": "0x",
  "alloc": {
    "0x00000000000000000000000000000000000000aa": {
      "balance": "0x56bc75e2d63100000",
      "nonce": "0x1",
      "code": "0x600160005500",
      "storage": {"0x01": "0x02"}
    },
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266": {"balance": "1000000000000000000"}
  }
}"#;

/// Init code that stores 1 in slot 0, logs, calls the zero address, and returns
/// one byte of runtime code.
const INIT_CODE: &str =
    "6001600055600060006000a060006000600060006000600061fffff150600160005360016000f3";

/// Byte strings for the RPC target: one beginning at each of the first methods.
pub(crate) fn rpc() -> Vec<Vec<u8>> {
    (0u8..64)
        .map(|pick| {
            let mut bytes = vec![pick, 1, 13, 3, 1, 4, 5, 20];
            bytes.extend((0u8..40).map(|i| i.wrapping_mul(pick).wrapping_add(7)));
            bytes
        })
        .collect()
}

/// Signed transactions of every type the chain takes, from dev account 0.
pub(crate) fn raw_txs() -> Vec<Vec<u8>> {
    signed().into_iter().map(|tx| tx.encoded_2718()).collect()
}

/// A block's entries on top of `genesis`: start, a batch, end.
pub(crate) fn log_entries(genesis: &SealedBlock) -> Vec<Vec<u8>> {
    let start = start_on(
        genesis,
        genesis.header.timestamp * 1000 + 1000,
        genesis.header.gas_limit,
        Address::ZERO,
    );
    let batch = TxBatch {
        txs: signed()
            .into_iter()
            .map(|tx| (Bytes::from(tx.encoded_2718()), dev_accounts(1)[0].address))
            .collect(),
    };
    [
        SequencerEntry::BlockStart(start),
        SequencerEntry::Transactions(batch),
        SequencerEntry::BlockEnd(BlockEnd {
            number: genesis.number() + 1,
            hash: B256::ZERO,
        }),
    ]
    .iter()
    .map(|entry| codec::encode(entry).expect("an entry encodes"))
    .collect()
}

/// What members send each other: a status poll, a forwarded write, a snapshot
/// transfer (offer, chunks in order, done) and answers, each encoded for the wire.
pub(crate) fn member_messages() -> Vec<Vec<u8>> {
    let vote = VoteOf::<TypeConfig>::new(1, 1);
    let meta = || SnapshotMetaOf::<TypeConfig> {
        last_log_id: None,
        last_membership: Default::default(),
    };
    let dir = tempfile::tempdir().expect("snapshot seed dir");
    let sst: Vec<u8> = (0u8..100).collect();
    std::fs::write(dir.path().join("000001.sst"), &sst).expect("write");
    std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-000002\n").expect("write");
    let manifest = Manifest::of_dir(dir.path()).expect("manifest");
    let id = manifest.id(&meta());
    let requests = [
        RaftRequest::Status,
        RaftRequest::Write(raw_txs()[0].clone().into()),
        RaftRequest::SnapshotOffer {
            vote,
            meta: meta(),
            manifest,
        },
        RaftRequest::SnapshotChunk(Chunk::new(id, 0, 0, sst[..50].to_vec())),
        RaftRequest::SnapshotChunk(Chunk::new(id, 0, 50, sst[50..].to_vec())),
        RaftRequest::SnapshotChunk(Chunk::new(id, 1, 0, b"MANIFEST-000002\n".to_vec())),
        RaftRequest::SnapshotDone {
            vote,
            meta: meta(),
            id,
        },
    ];
    let responses = [
        RaftResponse::SnapshotHave(vec![0, 16]),
        RaftResponse::SnapshotAck,
        RaftResponse::Written(Ok(B256::repeat_byte(7))),
        RaftResponse::Status(b"{}".to_vec()),
    ];
    let mut seeds: Vec<Vec<u8>> = requests
        .iter()
        .map(|request| codec::encode(request).expect("a request encodes"))
        .collect();
    seeds.extend(
        responses
            .iter()
            .map(|response| codec::encode(response).expect("a response encodes")),
    );
    seeds
}

/// What a stranger's dialer sends first: multistream-select's header, a proposal
/// of noise (which members speak) or of something else, and a noise handshake's
/// first message.
pub(crate) fn stranger() -> Vec<Vec<u8>> {
    /// A multistream-select message: its length (one byte here), then it.
    fn message(text: &str) -> Vec<u8> {
        let mut bytes = vec![text.len() as u8];
        bytes.extend_from_slice(text.as_bytes());
        bytes
    }
    let header = message("/multistream/1.0.0\n");
    let noise = [header.clone(), message("/noise\n")].concat();
    let mut handshake = noise.clone();
    handshake.extend_from_slice(&32u16.to_be_bytes());
    handshake.extend((0u8..32).map(|i| i.wrapping_mul(37)));
    vec![
        header.clone(),
        noise,
        handshake,
        [header.clone(), message("/yamux/1.0.0\n")].concat(),
        [header, message("ls\n")].concat(),
    ]
}

/// A complete node config, as `baton devnet` writes one.
pub(crate) fn config() -> Vec<u8> {
    let peer = baton_p2p::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
        .to_string();
    let mut args = NodeArgs::default();
    args.cluster.id = Some(1);
    args.cluster.p2p_addr = Some("/ip4/127.0.0.1/tcp/30301".to_string());
    args.cluster.members = vec![MemberEntry {
        id: 1,
        peer_id: peer,
        p2p_addr: "/ip4/127.0.0.1/tcp/30301".to_string(),
        rpc_url: "http://127.0.0.1:8545".to_string(),
    }];
    args.data.data_dir = Some("/tmp/baton-fuzz-node".into());
    args.data.dev_accounts = Some(10);
    args.timing.block_time_ms = Some(1000);
    args.to_toml().expect("a config encodes").into_bytes()
}

fn signed() -> Vec<TxEnvelope> {
    let signer = PrivateKeySigner::from_bytes(&dev_accounts(1)[0].private_key).expect("dev key");
    let to = TxKind::Call(Address::repeat_byte(0x11));
    let fee = 100_000_000_000;
    let access_list = AccessList(vec![AccessListItem {
        address: Address::repeat_byte(0x11),
        storage_keys: vec![B256::ZERO],
    }]);
    let init = Bytes::from(hex::decode(INIT_CODE).expect("hex"));
    let mut legacy = TxLegacy {
        chain_id: Some(DEV_CHAIN_ID),
        nonce: 0,
        gas_price: fee,
        gas_limit: 21_000,
        to,
        value: U256::from(1),
        input: Bytes::new(),
    };
    let mut eip2930 = TxEip2930 {
        chain_id: DEV_CHAIN_ID,
        nonce: 1,
        gas_price: fee,
        gas_limit: 50_000,
        to,
        value: U256::ZERO,
        access_list: access_list.clone(),
        input: Bytes::from_static(&[0xde, 0xad]),
    };
    let mut create = TxEip1559 {
        chain_id: DEV_CHAIN_ID,
        nonce: 2,
        gas_limit: 500_000,
        max_fee_per_gas: fee,
        max_priority_fee_per_gas: 1,
        to: TxKind::Create,
        value: U256::ZERO,
        access_list,
        input: init,
    };
    let legacy_signature = signer.sign_transaction_sync(&mut legacy).expect("sign");
    let eip2930_signature = signer.sign_transaction_sync(&mut eip2930).expect("sign");
    let create_signature = signer.sign_transaction_sync(&mut create).expect("sign");
    vec![
        legacy.into_signed(legacy_signature).into(),
        eip2930.into_signed(eip2930_signature).into(),
        create.into_signed(create_signature).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_message_seed_is_a_message() {
        for seed in member_messages() {
            let request = codec::decode::<RaftRequest>(&seed).is_ok();
            let response = codec::decode::<RaftResponse>(&seed).is_ok();
            assert!(request || response, "{}", hex::encode(&seed));
        }
    }
}

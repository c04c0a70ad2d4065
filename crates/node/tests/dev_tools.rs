//! What dev tools (foundry's `cast`/`forge`, hardhat scripts, debuggers) ask of a
//! devnet node beyond a wallet's calls, through a follower: unlocked dev accounts
//! the node signs for, traces of sealed transactions and of calls, state and
//! block overrides, the consensus encodings of sealed data, and the chain's
//! configuration.

use std::time::Duration;

use alloy_consensus::{Transaction as _, TxEnvelope, transaction::SignerRecoverable};
use alloy_dyn_abi::TypedData;
use alloy_eips::eip2718::Decodable2718;
use alloy_network::TransactionBuilder;
use alloy_primitives::{Address, B256, Bytes, Signature, U256, keccak256};
use alloy_provider::{DynProvider, Provider, ProviderBuilder};
use alloy_rpc_types_eth::TransactionRequest;
use baton_primitives::{dev_accounts, genesis::DEV_CHAIN_ID};
use baton_testing::{RARE_SNAPSHOTS, TestCluster, mined, receipt_of};
use jsonrpsee::{
    core::client::ClientT,
    http_client::{HttpClient, HttpClientBuilder},
    rpc_params,
};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(30);
const COUNTER_BIN: &str = include_str!("contracts/Counter.bin");
/// The node that is started without `--dev-unlocked`.
const LOCKED_NODE: u64 = 3;

fn increment(amount: u64) -> Bytes {
    let mut data = keccak256("increment(uint256)")[..4].to_vec();
    data.extend_from_slice(&U256::from(amount).to_be_bytes::<32>());
    data.into()
}

fn client(url: &str) -> HttpClient {
    HttpClientBuilder::default()
        .request_timeout(LONG)
        .build(url)
        .expect("client")
}

/// A cluster whose nodes sign for the dev accounts, but node [`LOCKED_NODE`], and
/// clients of a follower that signs.
struct Devnet {
    cluster: TestCluster,
    url: String,
    rpc: HttpClient,
    provider: DynProvider,
}

async fn devnet() -> Devnet {
    let cluster = TestCluster::start_with(3, 300, RARE_SNAPSHOTS, |id, config| {
        config.data.dev_unlocked = id != LOCKED_NODE;
    })
    .await;
    let leader = cluster.wait_for_leader(LONG).await;
    let follower = (1..=3)
        .find(|id| *id != leader && *id != LOCKED_NODE)
        .unwrap_or_else(|| cluster.follower_of(leader));
    let url = cluster.url(follower);
    let provider = ProviderBuilder::new()
        .connect_http(url.parse().expect("url"))
        .erased();
    Devnet {
        rpc: client(&url),
        cluster,
        url,
        provider,
    }
}

/// anvil's dev accounts: `eth_accounts` lists them, the node signs transactions,
/// messages (EIP-191) and typed data (EIP-712) for them, and refuses any other
/// address; a node without `--dev-unlocked` lists none and signs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_node_signs_for_its_unlocked_dev_accounts_only() {
    let Devnet {
        cluster,
        rpc,
        provider,
        ..
    } = devnet().await;
    let dev: Vec<Address> = dev_accounts(10).iter().map(|a| a.address).collect();

    assert_eq!(provider.get_accounts().await.expect("accounts"), dev);
    let locked: Vec<Address> = client(&cluster.url(LOCKED_NODE))
        .request("eth_accounts", rpc_params![])
        .await
        .expect("accounts");
    assert!(locked.is_empty());

    // eth_sendTransaction with only from/to/value: the node fills nonce, fees and
    // gas, signs, and the transfer lands; back to back, each with the next nonce.
    let to = Address::repeat_byte(0x71);
    let mut hashes = Vec::new();
    for value in 1..=3u64 {
        let request = TransactionRequest::default()
            .from(dev[1])
            .to(to)
            .value(U256::from(value));
        hashes.push(
            *provider
                .send_transaction(request)
                .await
                .expect("eth_sendTransaction")
                .tx_hash(),
        );
    }
    for hash in &hashes {
        assert!(receipt_of(&provider, *hash).await.status());
    }
    assert_eq!(
        provider.get_balance(to).await.expect("balance"),
        U256::from(6)
    );

    // eth_signTransaction: a transaction signed by the account, not sent.
    let request = TransactionRequest::default()
        .from(dev[2])
        .to(to)
        .value(U256::from(9));
    let signed: Value = rpc
        .request("eth_signTransaction", rpc_params![request.clone()])
        .await
        .expect("eth_signTransaction");
    let raw: Bytes = serde_json::from_value(signed["raw"].clone()).expect("raw");
    let tx = TxEnvelope::decode_2718(&mut raw.as_ref()).expect("decodes");
    assert_eq!(tx.recover_signer().expect("recovers"), dev[2]);
    assert_eq!(tx.chain_id(), Some(DEV_CHAIN_ID));
    assert_eq!(signed["tx"]["hash"], json!(tx.tx_hash()));

    // eth_fillTransaction: the fields a wallet fills in, for any sender, even on a
    // node that holds no keys.
    let filled: Value = client(&cluster.url(LOCKED_NODE))
        .request("eth_fillTransaction", rpc_params![request.from(dev[5])])
        .await
        .expect("eth_fillTransaction");
    assert_eq!(filled["tx"]["nonce"], json!("0x0"));
    assert_eq!(filled["tx"]["gas"], json!("0x5208"));
    assert_eq!(filled["tx"]["type"], json!("0x2"));

    // eth_sign and personal_sign: EIP-191, recoverable to the account.
    let message = b"hello baton";
    let by_eth_sign: Bytes = rpc
        .request("eth_sign", rpc_params![dev[3], Bytes::from_static(message)])
        .await
        .expect("eth_sign");
    let by_personal_sign: Bytes = rpc
        .request(
            "personal_sign",
            rpc_params![Bytes::from_static(message), dev[3]],
        )
        .await
        .expect("personal_sign");
    assert_eq!(by_eth_sign, by_personal_sign);
    let signature = Signature::try_from(by_eth_sign.as_ref()).expect("65 bytes");
    assert_eq!(
        signature
            .recover_address_from_msg(message)
            .expect("recovers"),
        dev[3]
    );

    // eth_signTypedData_v4: as MetaMask sends it, the typed data as JSON text.
    let typed = json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "chainId", "type": "uint256"}
            ],
            "Mail": [{"name": "contents", "type": "string"}, {"name": "to", "type": "address"}]
        },
        "primaryType": "Mail",
        "domain": {"name": "baton", "chainId": DEV_CHAIN_ID},
        "message": {"contents": "hi", "to": format!("{to}")}
    });
    let signature: Bytes = rpc
        .request(
            "eth_signTypedData_v4",
            rpc_params![dev[4], typed.to_string()],
        )
        .await
        .expect("eth_signTypedData_v4");
    let hash = serde_json::from_value::<TypedData>(typed)
        .expect("typed data")
        .eip712_signing_hash()
        .expect("hash");
    let signature = Signature::try_from(signature.as_ref()).expect("65 bytes");
    assert_eq!(
        signature
            .recover_address_from_prehash(&hash)
            .expect("recovers"),
        dev[4]
    );

    // Anything else is refused with geth's words.
    let stranger = Address::repeat_byte(0x42);
    let refused = rpc
        .request::<B256, _>(
            "eth_sendTransaction",
            rpc_params![TransactionRequest::default().from(stranger).to(to)],
        )
        .await
        .expect_err("not unlocked");
    assert!(refused.to_string().contains("unknown account"), "{refused}");
    let refused = client(&cluster.url(LOCKED_NODE))
        .request::<Bytes, _>("eth_sign", rpc_params![dev[0], Bytes::from_static(message)])
        .await
        .expect_err("this node holds no keys");
    assert!(refused.to_string().contains("unknown account"), "{refused}");
    cluster.stop().await;
}

/// foundry's and debuggers' view of a contract call, through a follower: the
/// struct logger, callTracer and prestateTracer on a sealed transaction, a whole
/// block traced, a traced call with a state override, and a trace too large for
/// the struct logger refused with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sealed_transactions_blocks_and_calls_are_traced() {
    let Devnet {
        cluster,
        rpc,
        provider,
        ..
    } = devnet().await;
    let me = dev_accounts(1)[0].address;

    let code: Bytes = COUNTER_BIN.trim().parse().expect("hex bytecode");
    let deploy = TransactionRequest::default()
        .from(me)
        .with_deploy_code(code);
    let counter = mined(&provider, deploy)
        .await
        .contract_address
        .expect("created");
    let call = TransactionRequest::default()
        .from(me)
        .to(counter)
        .input(increment(5).into());
    let receipt = mined(&provider, call).await;
    let hash = receipt.transaction_hash;
    assert!(receipt.status());

    let structs: Value = rpc
        .request("debug_traceTransaction", rpc_params![hash])
        .await
        .expect("struct logger");
    assert_eq!(structs["gas"], json!(receipt.gas_used));
    assert_eq!(structs["failed"], json!(false));
    let steps = structs["structLogs"].as_array().expect("struct logs");
    assert!(steps.iter().any(|step| step["op"] == "SSTORE"), "{steps:?}");
    assert!(steps.iter().any(|step| step["op"] == "LOG2"));

    let calls: Value = rpc
        .request(
            "debug_traceTransaction",
            rpc_params![hash, json!({"tracer": "callTracer"})],
        )
        .await
        .expect("callTracer");
    assert_eq!(calls["type"], json!("CALL"));
    assert_eq!(calls["from"], json!(me.to_string().to_lowercase()));
    assert_eq!(calls["to"], json!(counter.to_string().to_lowercase()));
    assert_eq!(calls["input"], json!(increment(5)));

    let prestate: Value = rpc
        .request(
            "debug_traceTransaction",
            rpc_params![hash, json!({"tracer": "prestateTracer"})],
        )
        .await
        .expect("prestateTracer");
    let before = &prestate[counter.to_string().to_lowercase()];
    assert!(
        before["code"].as_str().is_some_and(|c| c.len() > 2),
        "{prestate}"
    );

    // A whole block: one trace per transaction, each with its hash.
    let block = receipt.block_number.expect("sealed");
    let traces: Vec<Value> = rpc
        .request(
            "debug_traceBlockByNumber",
            rpc_params![format!("{block:#x}"), json!({"tracer": "callTracer"})],
        )
        .await
        .expect("block trace");
    let by_hash: Vec<Value> = rpc
        .request(
            "debug_traceBlockByHash",
            rpc_params![
                receipt.block_hash.expect("sealed"),
                json!({"tracer": "callTracer"})
            ],
        )
        .await
        .expect("block trace by hash");
    assert_eq!(traces, by_hash);
    assert!(
        traces.iter().any(|t| t["txHash"] == json!(hash)),
        "{traces:?}"
    );

    // A traced call, with the counter's slot 0 overridden to 100: its log says 101.
    let overrides = json!({
        "tracer": "callTracer",
        "tracerConfig": {"withLog": true},
        "stateOverrides": {counter.to_string(): {"stateDiff": {B256::ZERO.to_string(): format!("{:#066x}", 100)}}}
    });
    let traced: Value = rpc
        .request(
            "debug_traceCall",
            rpc_params![
                TransactionRequest::default()
                    .from(me)
                    .to(counter)
                    .input(increment(1).into()),
                "latest",
                overrides
            ],
        )
        .await
        .expect("debug_traceCall");
    assert!(traced["error"].is_null(), "{traced}");
    assert_eq!(
        traced["logs"][0]["data"],
        json!(format!("{:#066x}", 101)),
        "{traced}"
    );

    // An endless loop under the struct logger is cut off at the step budget.
    let endless = TransactionRequest::default()
        .from(me)
        .input(Bytes::from_static(&[0x5b, 0x60, 0x00, 0x56]).into())
        .gas_limit(30_000_000);
    let refused = rpc
        .request::<Value, _>("debug_traceCall", rpc_params![endless, "latest"])
        .await
        .expect_err("too large");
    assert!(refused.to_string().contains("trace too large"), "{refused}");
    // The node is unharmed: the same call with callTracer runs out of gas.
    let out_of_gas: Value = rpc
        .request(
            "debug_traceCall",
            rpc_params![endless_call(me), "latest", json!({"tracer": "callTracer"})],
        )
        .await
        .expect("callTracer on an endless loop");
    assert!(out_of_gas["error"].as_str().is_some(), "{out_of_gas}");
    cluster.stop().await;
}

fn endless_call(from: Address) -> TransactionRequest {
    TransactionRequest::default()
        .from(from)
        .input(Bytes::from_static(&[0x5b, 0x60, 0x00, 0x56]).into())
        .gas_limit(1_000_000)
}

/// Runtime code that returns the 32-byte word `push` leaves: `push`, then
/// `PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN`.
fn returning(push: &[u8]) -> Bytes {
    let mut code = push.to_vec();
    code.extend_from_slice(&[0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3]);
    code.into()
}

/// geth's `eth_call` overrides (code, storage, balance; block number and time),
/// `eth_estimateGas` with a balance override, the raw encodings of sealed data
/// (`debug_getRaw*`), `eth_getStorageValues`, `eth_baseFee` and `eth_config`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overrides_raw_data_and_chain_config() {
    let Devnet {
        cluster,
        rpc,
        provider,
        ..
    } = devnet().await;
    let me = dev_accounts(1)[0].address;
    let target = Address::repeat_byte(0x3c);
    let call = TransactionRequest::default().from(me).to(target);
    let word = |value: &Bytes| U256::from_be_slice(value);

    // Code and storage: SLOAD(0) returned, with slot 0 set by stateDiff.
    let sload = returning(&[0x60, 0x00, 0x54]);
    let storage = json!({target.to_string(): {
        "code": sload,
        "stateDiff": {B256::ZERO.to_string(): format!("{:#066x}", 7)}
    }});
    let out: Bytes = rpc
        .request("eth_call", rpc_params![call.clone(), "latest", storage])
        .await
        .expect("eth_call with state override");
    assert_eq!(word(&out), U256::from(7));
    // Balance: SELFBALANCE returned.
    let balance = json!({target.to_string(): {"code": returning(&[0x47]), "balance": "0x2a"}});
    let out: Bytes = rpc
        .request("eth_call", rpc_params![call.clone(), "latest", balance])
        .await
        .expect("balance override");
    assert_eq!(word(&out), U256::from(42));
    // Block overrides: NUMBER and TIMESTAMP.
    let number = json!({target.to_string(): {"code": returning(&[0x43])}});
    let out: Bytes = rpc
        .request(
            "eth_call",
            rpc_params![call.clone(), "latest", number, json!({"number": "0x3e8"})],
        )
        .await
        .expect("block override");
    assert_eq!(word(&out), U256::from(1000));
    let both = json!({"state": {}, "stateDiff": {}});
    let refused = rpc
        .request::<Bytes, _>(
            "eth_call",
            rpc_params![call.clone(), "latest", json!({target.to_string(): both})],
        )
        .await
        .expect_err("state and stateDiff together");
    assert!(
        refused.to_string().contains("both state and stateDiff"),
        "{refused}"
    );
    // An estimate for a sender with no funds, given funds by override.
    let poor = Address::repeat_byte(0x0b);
    let send = TransactionRequest::default()
        .from(poor)
        .to(me)
        .value(U256::from(10u64.pow(18)))
        .max_fee_per_gas(2_000_000_000);
    assert!(
        rpc.request::<U256, _>("eth_estimateGas", rpc_params![send.clone(), "latest"])
            .await
            .is_err()
    );
    let rich = json!({poor.to_string(): {"balance": "0xffffffffffffffffffff"}});
    let gas: U256 = rpc
        .request("eth_estimateGas", rpc_params![send, "latest", rich])
        .await
        .expect("estimate with a balance override");
    assert_eq!(gas, U256::from(21_000));

    // Raw encodings of a sealed block with a transaction in it.
    let transfer = TransactionRequest::default()
        .from(me)
        .to(target)
        .value(U256::from(1));
    let receipt = mined(&provider, transfer).await;
    let hash = receipt.transaction_hash;
    let number = format!("{:#x}", receipt.block_number.expect("sealed"));
    let header: Bytes = rpc
        .request("debug_getRawHeader", rpc_params![number.clone()])
        .await
        .expect("raw header");
    assert_eq!(Some(keccak256(&header)), receipt.block_hash);
    let block: Bytes = rpc
        .request("debug_getRawBlock", rpc_params![number.clone()])
        .await
        .expect("raw block");
    let block: alloy_consensus::Block<TxEnvelope> =
        alloy_rlp::Decodable::decode(&mut block.as_ref()).expect("an RLP block");
    assert!(
        block
            .body
            .transactions
            .iter()
            .any(|tx| *tx.tx_hash() == hash)
    );
    let receipts: Vec<Bytes> = rpc
        .request("debug_getRawReceipts", rpc_params![number])
        .await
        .expect("raw receipts");
    assert_eq!(receipts.len(), block.body.transactions.len());
    let raw: Bytes = rpc
        .request("debug_getRawTransaction", rpc_params![hash])
        .await
        .expect("raw transaction");
    assert_eq!(keccak256(&raw), hash);
    let unknown: Bytes = rpc
        .request("debug_getRawTransaction", rpc_params![B256::repeat_byte(9)])
        .await
        .expect("unknown hash");
    assert!(unknown.is_empty());

    // Several slots at once, as eth_getStorageAt reads them one by one.
    let values: Value = rpc
        .request(
            "eth_getStorageValues",
            rpc_params![
                json!({me.to_string(): [B256::ZERO, B256::with_last_byte(1)]}),
                "latest"
            ],
        )
        .await
        .expect("eth_getStorageValues");
    assert_eq!(
        values[format!("{me:#x}")],
        json!([B256::ZERO, B256::ZERO]),
        "{values}"
    );

    // The chain's configuration (EIP-7910) and the next block's base fee.
    let config: Value = rpc
        .request("eth_config", rpc_params![])
        .await
        .expect("eth_config");
    assert_eq!(
        config["current"]["chainId"],
        json!(format!("{DEV_CHAIN_ID:#x}"))
    );
    assert!(config["next"].is_null());
    let genesis = provider
        .get_block_by_number(0.into())
        .await
        .expect("genesis")
        .expect("block 0");
    let fork_id = crc32(genesis.header.hash.as_slice());
    assert_eq!(
        config["current"]["forkId"],
        json!(format!("{fork_id:#010x}"))
    );
    let base_fee: U256 = rpc
        .request("eth_baseFee", rpc_params![])
        .await
        .expect("eth_baseFee");
    assert!(base_fee > U256::ZERO);
    cluster.stop().await;
}

/// CRC-32 (IEEE), bit by bit: the fork hash of a chain with every fork at genesis.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// geth's `txpool_*` through a follower: a transaction whose nonce is ahead of its
/// sender's waits at the leader and shows as `queued` (nothing is ever `pending`:
/// an acknowledged transaction is in the open block) until the gap fills.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_waiting_on_a_nonce_gap_is_queued_in_the_txpool() {
    let Devnet {
        cluster, url, rpc, ..
    } = devnet().await;
    let key = alloy_signer_local::PrivateKeySigner::from_bytes(&dev_accounts(7)[6].private_key)
        .expect("key");
    let me = key.address();
    let wallet = alloy_network::EthereumWallet::from(key);
    let transfer = || {
        TransactionRequest::default()
            .to(Address::repeat_byte(0x5a))
            .value(U256::from(1))
            .gas_limit(21_000)
    };
    let (_, ahead) = baton_testing::signed_raw(transfer(), 1, &wallet).await;
    let (_, first) = baton_testing::signed_raw(transfer(), 0, &wallet).await;
    let waiting = {
        let rpc = client(&url);
        tokio::spawn(async move {
            rpc.request::<B256, _>("eth_sendRawTransaction", rpc_params![ahead])
                .await
        })
    };
    // It waits at most 1.5 s for the gap: look (both views, back to back) until then.
    let deadline = std::time::Instant::now() + Duration::from_millis(1_400);
    let (status, content) = loop {
        let status: Value = rpc
            .request("txpool_status", rpc_params![])
            .await
            .expect("txpool_status");
        let content: Value = rpc
            .request("txpool_contentFrom", rpc_params![me])
            .await
            .expect("txpool_contentFrom");
        let seen = status["queued"] == json!("0x1") && !content["queued"]["1"].is_null();
        if seen || std::time::Instant::now() > deadline {
            break (status, content);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, json!({"pending": "0x0", "queued": "0x1"}));
    assert_eq!(content["queued"]["1"]["nonce"], json!("0x1"), "{content}");
    assert_eq!(content["pending"], json!({}));

    let _: B256 = rpc
        .request("eth_sendRawTransaction", rpc_params![first])
        .await
        .expect("the gap fills");
    waiting
        .await
        .expect("task")
        .expect("the waiting transaction is admitted");
    let content: Value = rpc
        .request("txpool_content", rpc_params![])
        .await
        .expect("txpool_content");
    assert_eq!(content, json!({"pending": {}, "queued": {}}));
    cluster.stop().await;
}

/// `eth_simulateV1` through a follower: blocks built on the head, each call seeing
/// the ones before it (across blocks too), state overrides per block, a revert
/// reported per call, state roots as the chain would seal them (an empty block
/// keeps the head's), invalid calls refused with the spec's codes under
/// validation, and nothing committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simulated_blocks_build_on_the_head_and_commit_nothing() {
    let Devnet {
        cluster,
        rpc,
        provider,
        ..
    } = devnet().await;
    let poor = Address::repeat_byte(0x0c);
    let payee = Address::repeat_byte(0x0d);
    let reader = Address::repeat_byte(0x0e);
    // BALANCE(payee), returned.
    let mut balance_of_payee = vec![0x73];
    balance_of_payee.extend_from_slice(payee.as_slice());
    balance_of_payee.push(0x31);
    let payload = json!({
        "blockStateCalls": [
            {
                "stateOverrides": {poor.to_string(): {"balance": "0x64"}},
                "calls": [{"from": poor, "to": payee, "value": "0x28"}]
            },
            {},
            {
                "stateOverrides": {
                    reader.to_string(): {"code": returning(&balance_of_payee)},
                    payee.to_string(): {"code": "0x60006000fd"}
                },
                "calls": [
                    {"from": poor, "to": reader},
                    {"from": poor, "to": payee}
                ]
            }
        ]
    });
    let head: U256 = rpc
        .request("eth_blockNumber", rpc_params![])
        .await
        .expect("head");
    let blocks = simulate_while_the_chain_moves(&rpc, payload).await;
    assert_eq!(blocks.len(), 3);
    let head_block: Value = rpc
        .request(
            "eth_getBlockByNumber",
            rpc_params![format!("{head:#x}"), false],
        )
        .await
        .expect("head block");
    let numbers: Vec<u64> = blocks
        .iter()
        .map(|b| {
            u64::from_str_radix(
                b["number"]
                    .as_str()
                    .expect("number")
                    .trim_start_matches("0x"),
                16,
            )
            .expect("hex")
        })
        .collect();
    let head = head.to::<u64>();
    assert!(numbers[0] > head && numbers[1] == numbers[0] + 1 && numbers[2] == numbers[1] + 1);
    assert_eq!(blocks[1]["parentHash"], blocks[0]["hash"]);
    assert_eq!(
        blocks[1]["stateRoot"], blocks[0]["stateRoot"],
        "an empty block keeps the root"
    );
    assert_ne!(blocks[0]["stateRoot"], head_block["stateRoot"]);
    assert_eq!(blocks[0]["calls"][0]["status"], json!("0x1"));
    assert_eq!(blocks[0]["transactions"].as_array().map(Vec::len), Some(1));
    // The reader sees the first block's transfer; the reverting payee says why.
    let read = &blocks[2]["calls"][0];
    assert_eq!(
        read["returnData"],
        json!(format!("{:#066x}", 0x28)),
        "{read}"
    );
    let reverted = &blocks[2]["calls"][1];
    assert_eq!(reverted["status"], json!("0x0"));
    assert_eq!(reverted["error"]["code"], json!(3), "{reverted}");

    // An empty simulation on the head keeps its state root.
    let empty = simulate_while_the_chain_moves(&rpc, json!({"blockStateCalls": [{}]})).await;
    let latest: Value = rpc
        .request("eth_getBlockByNumber", rpc_params!["latest", false])
        .await
        .expect("latest");
    if empty[0]["parentHash"] == latest["hash"] {
        assert_eq!(empty[0]["stateRoot"], latest["stateRoot"]);
    }

    // With validation, a wrong nonce is refused with the spec's code.
    let stale = json!({
        "blockStateCalls": [{"calls": [{"from": dev_accounts(1)[0].address, "to": payee, "nonce": "0x0",
            "maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "0x1"}]}],
        "validation": true
    });
    let mine = dev_accounts(1)[0].address;
    // A real transfer, so nonce 0 is used; sealed, so `latest` (what the
    // simulation builds on) has it.
    let transfer = TransactionRequest::default()
        .from(mine)
        .to(payee)
        .value(U256::from(1));
    mined(&provider, transfer).await;
    let refused = rpc
        .request::<Value, _>("eth_simulateV1", rpc_params![stale])
        .await
        .expect_err("nonce too low");
    assert!(
        refused.to_string().contains("-38010") || refused.to_string().contains("nonce too low"),
        "{refused}"
    );

    // Nothing was committed.
    let balance: U256 = rpc
        .request("eth_getBalance", rpc_params![payee, "latest"])
        .await
        .expect("balance");
    assert_eq!(balance, U256::from(1));
    cluster.stop().await;
}

/// `eth_simulateV1` of `payload` on `latest`, sent again while the node answers
/// that a block was sealed during the simulation (its error says to retry).
async fn simulate_while_the_chain_moves(
    rpc: &jsonrpsee::http_client::HttpClient,
    payload: Value,
) -> Vec<Value> {
    for _ in 0..20 {
        match rpc
            .request::<Vec<Value>, _>("eth_simulateV1", rpc_params![payload.clone(), "latest"])
            .await
        {
            Err(jsonrpsee::core::ClientError::Call(error))
                if error.message().contains("the chain moved on") => {}
            answer => return answer.expect("eth_simulateV1"),
        }
    }
    panic!("the chain moved on during 20 simulations in a row");
}

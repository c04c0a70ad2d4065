#!/usr/bin/env python3
"""Conformance of a node's JSON-RPC to the Ethereum execution API specification.

Calls every method of the spec vendored in testnet/execution-apis (eth/, debug/,
txpool/; the engine API is not there) over HTTP and over WebSocket and validates
each answer against the method's result schema (JSON Schema 2020-12, `$ref`s
resolved against schemas/*.yaml). Parameters come from a chain this script fills
first: legacy, EIP-2930 and EIP-1559 transfers, a contract that stores a word and
logs it, and a call to it. Each method is asked about recent and historical
blocks, every block tag and a block hash where its parameter schema allows them,
and unknown hashes where its result may be `null`.

A method passes when every answer validates. A JSON-RPC error passes only where
the spec lists its code for the method (printed in the detail); -32601 counts as
missing. testnet/rpc-suites.sh starts a devnet and runs this against a follower:

    conformance.py --http http://127.0.0.1:18546 --ws ws://127.0.0.1:18546
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

SPEC_DIR = Path(__file__).resolve().parent / "execution-apis"
METHOD_DIRS = ("eth", "debug", "txpool")
SPEC_URI = "urn:execution-apis"
# These codes say the request was malformed or the server broke; listed in the
# spec's shared error group, they are never a right answer to a well-formed call.
STANDARD_ERROR_GROUP = "JSONRPCStandardErrors"
METHOD_NOT_FOUND = -32601

DEV_MNEMONIC = "test test test test test test test test test test test junk"
GWEI = 10**9
TIP = GWEI
TIMEOUT_S = 30
TAGS = ("latest", "earliest", "pending", "safe", "finalized")
UNKNOWN_HASH = "0x" + keccak(text="baton conformance: no such block or transaction").hex()
STORED_TOPIC = "0x" + keccak(text="Stored(uint256)").hex()
SLOT0 = "0x" + "00" * 32

# The test contract's runtime code: 32 bytes of calldata are stored in slot 0 and
# logged as Stored(uint256); empty calldata returns slot 0; anything else reverts
# with the data 0xdeadbeef.
RUNTIME = bytes.fromhex(
    "36 15 60 19 57"  # 0x00 if CALLDATASIZE == 0: JUMP GET
    "36 60 20 14 60 25 57"  # 0x05 if CALLDATASIZE == 32: JUMP SET
    "63 deadbeef 60 00 52 60 04 60 1c fd"  # 0x0c MSTORE(0, 0xdeadbeef) REVERT(28, 4)
    "5b 60 00 54 60 00 52 60 20 60 00 f3"  # 0x19 GET: MSTORE(0, SLOAD(0)) RETURN(0, 32)
    "5b 60 00 35 80 60 00 55 60 00 52"  # 0x25 SET: w = CALLDATALOAD(0) SSTORE(0, w) MSTORE(0, w)
    "7f" + STORED_TOPIC[2:] + "60 20 60 00 a1 00"  # LOG1(0, 32, Stored) STOP
)
assert RUNTIME[0x19] == RUNTIME[0x25] == 0x5B, "jump targets must be JUMPDESTs"
# Copies RUNTIME (which follows these 11 bytes) to memory and returns it.
INIT_CODE = bytes.fromhex(f"60 {len(RUNTIME):02x} 80 60 0b 60 00 39 60 00 f3") + RUNTIME


def word(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def short(value: Any, limit: int = 300) -> str:
    return clip(json.dumps(value), limit)


# --- The spec ----------------------------------------------------------------


@dataclass
class Method:
    name: str
    params: list[dict]
    result: dict
    errors: dict[int, dict]  # code -> the spec's error entry (message, data schema)


class Spec:
    """The methods and schemas of one copy of ethereum/execution-apis."""

    def __init__(self, root: Path):
        schemas = merged_yaml(root / "schemas")
        groups = merged_yaml(root / "error-groups")
        self.methods: dict[str, Method] = {}
        for path in sorted(p for d in METHOD_DIRS for p in (root / d).glob("*.yaml")):
            for entry in yaml.safe_load(path.read_text()):
                method = method_of(absolute_refs(entry), groups)
                self.methods[method.name] = method
        document = {"components": {"schemas": absolute_refs(schemas)}}
        self.registry = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(document))

    def validator(self, schema: dict) -> Draft202012Validator:
        return Draft202012Validator(schema, registry=self.registry)


def merged_yaml(folder: Path) -> dict:
    merged: dict = {}
    for path in sorted(folder.glob("*.yaml")):
        merged.update(yaml.safe_load(path.read_text()))
    return merged


def absolute_refs(node: Any) -> Any:
    """`#/components/schemas/X` -> `urn:execution-apis#/components/schemas/X`, so a
    method's schema, validated on its own, resolves refs in the merged schemas."""
    if isinstance(node, dict):
        return {
            k: SPEC_URI + v if k == "$ref" and v.startswith("#/components/schemas/") else absolute_refs(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [absolute_refs(v) for v in node]
    return node


def method_of(entry: dict, groups: dict) -> Method:
    errors = {e["code"]: e for e in entry.get("errors", [])}
    for ref in entry.get("error-groups", []):
        name = ref["$ref"].rsplit("/", 1)[1]
        if name != STANDARD_ERROR_GROUP:
            errors.update({e["code"]: e for e in groups[name]["errors"]})
    return Method(entry["name"], entry["params"], entry["result"]["schema"], errors)


def opcode_logger_only(schema: Any) -> Any:
    """The trace result schema with each anyOf cut to its opcode-logger branch: the
    spec's text says that branch is the answer when no named tracer is given (the
    other branch, a named tracer's output, accepts anything)."""
    if isinstance(schema, dict):
        out = {k: opcode_logger_only(v) for k, v in schema.items()}
        if "anyOf" in schema:
            out["anyOf"] = [s for s in out["anyOf"] if s.get("title", "").startswith("Opcode tracer")]
        return out
    if isinstance(schema, list):
        return [opcode_logger_only(v) for v in schema]
    return schema


# --- Transports ----------------------------------------------------------------


@dataclass
class Reply:
    result: Any = None
    error: dict | None = None


class SetupError(Exception):
    """A call that only prepares a case failed."""


# A call that got no JSON-RPC answer at all (JSONDecodeError is a ValueError).
TRANSPORT_ERRORS = (OSError, ValueError, WebSocketException)


class Client:
    name: str
    _ids = itertools.count(1)

    def call(self, method: str, params: list) -> Reply:
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        answer = self.exchange(request)
        if "error" in answer:
            return Reply(error=answer["error"])
        if "result" not in answer:
            raise ValueError(f"neither result nor error in {short(answer)}")
        return Reply(result=answer["result"])

    def must(self, method: str, *params: Any) -> Any:
        reply = self.call(method, list(params))
        if reply.error is not None:
            raise SetupError(f"{method} {short(list(params), 120)} failed: {reply.error}")
        return reply.result

    def exchange(self, request: dict) -> dict:
        raise NotImplementedError


class Http(Client):
    name = "http"

    def __init__(self, url: str):
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def exchange(self, request: dict) -> dict:
        http_request = urllib.request.Request(
            self.url, json.dumps(request).encode(), {"content-type": "application/json"}
        )
        try:
            with self.opener.open(http_request, timeout=TIMEOUT_S) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            return json.loads(e.read() or b"{}") or {"error": {"code": e.code, "message": str(e)}}


class Ws(Client):
    name = "ws"

    def __init__(self, connection: ClientConnection):
        self.connection = connection

    def exchange(self, request: dict) -> dict:
        self.connection.send(json.dumps(request))
        while True:
            answer = json.loads(self.connection.recv(timeout=TIMEOUT_S))
            if answer.get("id") == request["id"]:
                return answer


# --- The chain the cases talk about ---------------------------------------------


@dataclass
class Chain:
    """What set_up put on chain. Account 0 signed the set-up transactions and is
    the one the node signs for; account 1 signs the raw transactions of cases, so
    its nonces are counted here."""

    chain_id: int
    accounts: list[LocalAccount]
    nonces: dict[str, int]
    contract: str = ""
    receipts: dict[str, dict] = field(default_factory=dict)  # legacy, eip2930, eip1559, deploy, store
    stored: int = 1234  # the word in the contract's slot 0

    @property
    def recent(self) -> dict:
        """The block of the store call: transactions, a log, a storage write."""
        return self.receipts["store"]

    def block_ids(self) -> list[tuple[str, str]]:
        return [
            ("recent", self.recent["blockNumber"]),
            ("historical 0x1", "0x1"),
            *((tag, tag) for tag in TAGS),
        ]

    def take_nonce(self, address: str) -> int:
        nonce = self.nonces[address]
        self.nonces[address] += 1
        return nonce

    def address(self, i: int) -> str:
        return self.accounts[i].address


def dev_accounts(mnemonic: str, count: int) -> list[LocalAccount]:
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]


def fees(rpc: Client) -> dict:
    base = int(rpc.must("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    return {"maxFeePerGas": 2 * base + TIP, "maxPriorityFeePerGas": TIP}


def signed(chain: Chain, rpc: Client, sender: LocalAccount, **fields: Any) -> str:
    """A raw transaction from `sender` with its next nonce: EIP-1559 unless a
    `gasPrice` is given."""
    tx = {"chainId": chain.chain_id, "nonce": chain.take_nonce(sender.address), "value": 0, "gas": 100_000}
    tx.update(fields)
    if "to" in tx:
        tx["to"] = to_checksum_address(tx["to"])
    if "gasPrice" not in tx:
        tx = {"type": 2, **fees(rpc), **tx}
    return "0x" + bytes(sender.sign_transaction(tx).raw_transaction).hex()


def gas_price(rpc: Client) -> int:
    return fees(rpc)["maxFeePerGas"]


def wait_receipt(rpc: Client, tx_hash: str) -> dict:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        receipt = rpc.must("eth_getTransactionReceipt", tx_hash)
        if receipt is not None:
            return receipt
        time.sleep(0.2)
    raise SetupError(f"no receipt for {tx_hash} within {TIMEOUT_S} s")


def wait_block_after(rpc: Client, number: int) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while int(rpc.must("eth_blockNumber"), 16) <= number:
        if time.monotonic() > deadline:
            raise SetupError(f"no block after {number} within {TIMEOUT_S} s")
        time.sleep(0.2)


def send(rpc: Client, raw: str) -> str:
    return rpc.must("eth_sendRawTransaction", raw)


def set_up(rpc: Client, accounts: list[LocalAccount]) -> Chain:
    """Transfers of three types, a contract deployment and a call that stores and
    logs, then one more block so the recent block is not the head."""
    a0, a1 = accounts
    nonces = {a.address: int(rpc.must("eth_getTransactionCount", a.address, "latest"), 16) for a in accounts}
    chain = Chain(int(rpc.must("eth_chainId"), 16), accounts, nonces)
    price = gas_price(rpc)
    sent = {
        "legacy": send(rpc, signed(chain, rpc, a0, to=a1.address, value=GWEI, gas=21_000, gasPrice=price)),
        "eip2930": send(rpc, signed(chain, rpc, a0, type=1, to=a1.address, value=GWEI, gas=30_000, gasPrice=price,
                                    accessList=[{"address": a1.address, "storageKeys": [SLOT0]}])),
        "eip1559": send(rpc, signed(chain, rpc, a1, to=a0.address, value=GWEI, gas=21_000)),
        "deploy": send(rpc, signed(chain, rpc, a0, data="0x" + INIT_CODE.hex(), gas=200_000)),
    }
    chain.receipts = {kind: wait_receipt(rpc, tx_hash) for kind, tx_hash in sent.items()}
    chain.contract = chain.receipts["deploy"]["contractAddress"]
    store = send(rpc, signed(chain, rpc, a0, to=chain.contract, data=word(chain.stored)))
    chain.receipts["store"] = wait_receipt(rpc, store)
    wait_block_after(rpc, int(chain.recent["blockNumber"], 16))
    return chain


# --- Cases ---------------------------------------------------------------------


@dataclass
class Case:
    label: str
    params: list
    # "any" (the schema decides), "value" (not null), "null", "entries" (a
    # non-empty list: the chain holds what was asked for) or a JSON-RPC error code.
    expect: str | int = "any"
    # A narrower result schema the spec's text demands for these params.
    schema: dict | None = None


@dataclass
class Ctx:
    spec: Spec
    method: Method
    chain: Chain
    rpc: Client

    def blocks(self, index: int) -> list[tuple[str, str]]:
        """The chain's block ids that the spec allows as param `index`. A block
        hash matches the `uint` pattern too, so only the schema's name tells
        whether hashes are allowed."""
        schema = self.method.params[index]["schema"]
        takes_hash = schema.get("$ref", "").endswith("/BlockNumberOrTagOrHash")
        ids = self.chain.block_ids() + ([("recent by hash", self.chain.recent["blockHash"])] if takes_hash else [])
        return [(label, block) for label, block in ids if self.spec.validator(schema).is_valid(block)]

    def at_blocks(self, index: int, params: Callable[[str], list], skip: tuple[str, ...] = ()) -> list[Case]:
        return [
            Case(label, params(block), "any" if block == "pending" else "value")
            for label, block in self.blocks(index)
            if block not in skip
        ]

    def future_block(self) -> str:
        return hex(int(self.rpc.must("eth_blockNumber"), 16) + 1000)

    def tx_hashes(self) -> list[tuple[str, str]]:
        return [(kind, r["transactionHash"]) for kind, r in self.chain.receipts.items()]


def no_params(c: Ctx) -> list[Case]:
    return [Case("", [])]


def block_by_hash(c: Ctx) -> list[Case]:
    hashes = [("recent", c.chain.recent["blockHash"]), ("legacy tx's", c.chain.receipts["legacy"]["blockHash"])]
    return [Case(f"{label} hydrated={full}", [h, full], "value") for label, h in hashes for full in (False, True)] + [
        Case("unknown hash", [UNKNOWN_HASH, False], "null")
    ]


def block_by_number(c: Ctx) -> list[Case]:
    cases = [Case(f"{case.label} hydrated={full}", case.params + [full], case.expect)
             for full in (False, True) for case in c.at_blocks(0, lambda b: [b])]
    return cases + [Case("future block", [c.future_block(), False], "null")]


def tx_count_by_hash(c: Ctx) -> list[Case]:
    return [Case("recent", [c.chain.recent["blockHash"]], "value"), Case("unknown hash", [UNKNOWN_HASH], "null")]


def tx_count_by_number(c: Ctx) -> list[Case]:
    return c.at_blocks(0, lambda b: [b]) + [Case("future block", [c.future_block()], "null")]


def by_block_or_hash(c: Ctx) -> list[Case]:
    return c.at_blocks(0, lambda b: [b]) + [
        Case("unknown hash", [UNKNOWN_HASH], "null"),
        Case("future block", [c.future_block()], "null"),
    ]


def call_request(c: Ctx, data: str = "0x") -> dict:
    return {"from": c.chain.address(0), "to": c.chain.contract, "input": data}


def transfer_request(c: Ctx) -> dict:
    return {"from": c.chain.address(0), "to": c.chain.address(1), "value": hex(GWEI)}


def eth_call(c: Ctx) -> list[Case]:
    getter = call_request(c)
    transfer = {**transfer_request(c), "gas": hex(21_000), **{k: hex(v) for k, v in fees(c.rpc).items()}}
    return c.at_blocks(1, lambda b: [getter, b]) + [
        Case("no block param", [getter], "value"),
        Case("transfer with fees", [transfer, "latest"], "value"),
        Case("reverting call", [call_request(c, "0x01"), "latest"], 3),
    ]


def estimate_gas(c: Ctx) -> list[Case]:
    store = call_request(c, word(7))
    return c.at_blocks(1, lambda b: [transfer_request(c), b]) + [
        Case("store call", [store, "latest"], "value"),
        Case("no block param", [store], "value"),
        Case("reverting call", [call_request(c, "0x01"), "latest"], 3),
    ]


def create_access_list(c: Ctx) -> list[Case]:
    return c.at_blocks(1, lambda b: [call_request(c, word(7)), b]) + [
        Case("no block param", [call_request(c, word(7))], "value")
    ]


def simulate(c: Ctx) -> list[Case]:
    first = {
        "stateOverrides": {c.chain.contract: {"stateDiff": {SLOT0: word(7)}}},
        "calls": [transfer_request(c), call_request(c), call_request(c, word(9))],
    }
    second = {"calls": [call_request(c), call_request(c, "0x01")]}
    plain = {"blockStateCalls": [first, second]}
    flags = {**plain, "traceTransfers": True, "returnFullTransactions": True, "validation": False}
    return [
        Case("two blocks, overrides, a revert", [plain, "latest"], "value"),
        Case("all flags", [flags, c.chain.recent["blockNumber"]], "value"),
        Case("no block param", [plain], "value"),
    ]


def fee_history(c: Ctx) -> list[Case]:
    return c.at_blocks(1, lambda b: ["0x3", b, [10, 50, 90]]) + [
        Case("no percentiles", ["0x2", "latest", []], "value")
    ]


def node_signed_requests(c: Ctx) -> list[Case]:
    legacy = {**transfer_request(c), "gas": hex(21_000), "gasPrice": hex(gas_price(c.rpc))}
    return [
        Case("transfer", [transfer_request(c)], "value"),
        Case("contract call", [call_request(c, word(5))], "value"),
        Case("legacy with gas price", [legacy], "value"),
    ]


def log_filters(c: Ctx) -> list[tuple[str, dict]]:
    """Filters that match the store call's log."""
    recent = c.chain.recent
    return [
        ("by address since 0x1", {"fromBlock": "0x1", "toBlock": "latest", "address": c.chain.contract}),
        ("by block hash and topic", {"blockHash": recent["blockHash"], "topics": [STORED_TOPIC]}),
        ("by range, topic alternatives", {"fromBlock": recent["blockNumber"], "toBlock": recent["blockNumber"],
                                          "address": [c.chain.contract], "topics": [[STORED_TOPIC, SLOT0]]}),
        ("earliest to finalized", {"fromBlock": "earliest", "toBlock": "finalized", "topics": [STORED_TOPIC, None]}),
    ]


def new_filter(c: Ctx) -> list[Case]:
    return [Case(label, [f], "value") for label, f in log_filters(c)]


def get_logs(c: Ctx) -> list[Case]:
    return [Case(label, [f], "entries") for label, f in log_filters(c)]


def filter_logs(c: Ctx) -> list[Case]:
    return [Case(label, [c.rpc.must("eth_newFilter", f)], "entries") for label, f in log_filters(c)]


def filter_changes(c: Ctx) -> list[Case]:
    """Installs a log, a block and a pending-transaction filter, then stores a new
    word; each filter must report what followed."""
    filters = {
        "log filter": c.rpc.must("eth_newFilter", {"address": c.chain.contract, "topics": [STORED_TOPIC]}),
        "block filter": c.rpc.must("eth_newBlockFilter"),
        "pending transaction filter": c.rpc.must("eth_newPendingTransactionFilter"),
    }
    c.chain.stored += 1
    raw = signed(c.chain, c.rpc, c.chain.accounts[1], to=c.chain.contract, data=word(c.chain.stored))
    receipt = wait_receipt(c.rpc, send(c.rpc, raw))
    wait_block_after(c.rpc, int(receipt["blockNumber"], 16))
    return [Case(label, [filter_id], "entries") for label, filter_id in filters.items()]


def uninstall_filter(c: Ctx) -> list[Case]:
    installed = c.rpc.must("eth_newFilter", log_filters(c)[0][1])
    return [Case("installed filter", [installed], "value"), Case("unknown filter id", ["0xdead"], "value")]


def sign(c: Ctx) -> list[Case]:
    return [Case("account 0", [c.chain.address(0), "0x" + b"baton conformance".hex()], "value")]


def send_raw(c: Ctx) -> list[Case]:
    a1 = c.chain.accounts[1]
    return [
        Case("EIP-1559 transfer", [signed(c.chain, c.rpc, a1, to=c.chain.address(0), value=1, gas=21_000)], "value"),
        Case("legacy contract call", [signed(c.chain, c.rpc, a1, to=c.chain.contract, data=word(8),
                                             gasPrice=gas_price(c.rpc))], "value"),
    ]


def address_state(c: Ctx, address: str) -> list[Case]:
    return c.at_blocks(1, lambda b: [address, b]) + [Case("no block param", [address], "value")]


def of_account(c: Ctx) -> list[Case]:
    return address_state(c, c.chain.address(0))


def of_contract(c: Ctx) -> list[Case]:
    return address_state(c, c.chain.contract)


def storage_at(c: Ctx) -> list[Case]:
    return c.at_blocks(2, lambda b: [c.chain.contract, "0x0", b]) + [
        Case("32-byte slot, no block param", [c.chain.contract, SLOT0], "value")
    ]


def storage_values(c: Ctx) -> list[Case]:
    requests = {c.chain.contract: ["0x0", "0x1"], c.chain.address(0): [SLOT0]}
    return c.at_blocks(1, lambda b: [requests, b]) + [Case("no block param", [requests], "value")]


def proof(c: Ctx) -> list[Case]:
    return c.at_blocks(2, lambda b: [c.chain.contract, ["0x0", "0x1"], b]) + [
        Case("account, no slots", [c.chain.address(0), []], "value")
    ]


def tx_by_hash(c: Ctx) -> list[Case]:
    return [Case(kind, [h], "value") for kind, h in c.tx_hashes()] + [Case("unknown hash", [UNKNOWN_HASH], "null")]


def raw_tx_by_hash(c: Ctx) -> list[Case]:
    # The result is `bytes`, not nullable: for an unknown hash the spec leaves
    # bytes or its listed -32602.
    return [Case(kind, [h], "value") for kind, h in c.tx_hashes()] + [Case("unknown hash", [UNKNOWN_HASH])]


def tx_by_block_hash_and_index(c: Ctx) -> list[Case]:
    return [Case(kind, [r["blockHash"], r["transactionIndex"]], "value") for kind, r in c.chain.receipts.items()] + [
        Case("unknown hash", [UNKNOWN_HASH, "0x0"], "null"),
        Case("index past the end", [c.chain.recent["blockHash"], "0x3e8"], "null"),
    ]


def tx_by_block_number_and_index(c: Ctx) -> list[Case]:
    return [Case(kind, [r["blockNumber"], r["transactionIndex"]], "value") for kind, r in c.chain.receipts.items()] + [
        Case("latest, index 0", ["latest", "0x0"]),
        Case("index past the end", [c.chain.recent["blockNumber"], "0x3e8"], "null"),
        Case("future block", [c.future_block(), "0x0"], "null"),
    ]


def raw_by_block(c: Ctx) -> list[Case]:
    return c.at_blocks(0, lambda b: [b])


TRACERS = [
    ("callTracer", {"tracer": "callTracer"}),
    ("prestateTracer diffMode", {"tracer": "prestateTracer", "tracerConfig": {"diffMode": True}}),
]
OPCODE_CONFIGS = [
    ("default opcode logger", None),
    ("opcode logger with memory, return data", {"enableMemory": True, "enableReturnData": True}),
    ("opcode logger without stack, storage", {"disableStack": True, "disableStorage": True, "limit": 5}),
]


def trace_cases(c: Ctx, label: str, target: str) -> list[Case]:
    opcode_schema = opcode_logger_only(c.method.result)
    cases = [Case(f"{label}, {name}", [target] + ([cfg] if cfg else []), "value", opcode_schema)
             for name, cfg in OPCODE_CONFIGS]
    return cases + [Case(f"{label}, {name}", [target, cfg], "value") for name, cfg in TRACERS]


def trace_block_by_number(c: Ctx) -> list[Case]:
    # The genesis block ("earliest") has no parent state: the spec wants an error.
    others = [Case(case.label, case.params, case.expect, opcode_logger_only(c.method.result))
              for case in c.at_blocks(0, lambda b: [b], skip=("earliest", c.chain.recent["blockNumber"]))]
    return trace_cases(c, "recent", c.chain.recent["blockNumber"]) + others


def trace_block_by_hash(c: Ctx) -> list[Case]:
    return trace_cases(c, "recent", c.chain.recent["blockHash"])


def trace_transaction(c: Ctx) -> list[Case]:
    return trace_cases(c, "store call", c.chain.recent["transactionHash"]) + trace_cases(
        c, "legacy transfer", c.chain.receipts["legacy"]["transactionHash"]
    )


def content_from(c: Ctx) -> list[Case]:
    return [Case("account 0", [c.chain.address(0)], "value")]


BUILDERS: dict[str, Callable[[Ctx], list[Case]]] = {
    "eth_getBlockByHash": block_by_hash,
    "eth_getBlockByNumber": block_by_number,
    "eth_getBlockTransactionCountByHash": tx_count_by_hash,
    "eth_getBlockTransactionCountByNumber": tx_count_by_number,
    "eth_getBlockReceipts": by_block_or_hash,
    "eth_getBlockAccessList": by_block_or_hash,
    "eth_call": eth_call,
    "eth_estimateGas": estimate_gas,
    "eth_createAccessList": create_access_list,
    "eth_simulateV1": simulate,
    "eth_feeHistory": fee_history,
    "eth_fillTransaction": node_signed_requests,
    "eth_signTransaction": node_signed_requests,
    "eth_sendTransaction": node_signed_requests,
    "eth_sign": sign,
    "eth_newFilter": new_filter,
    "eth_uninstallFilter": uninstall_filter,
    "eth_getFilterChanges": filter_changes,
    "eth_getFilterLogs": filter_logs,
    "eth_getLogs": get_logs,
    "eth_getBalance": of_account,
    "eth_getTransactionCount": of_account,
    "eth_getCode": of_contract,
    "eth_getStorageAt": storage_at,
    "eth_getStorageValues": storage_values,
    "eth_getProof": proof,
    "eth_sendRawTransaction": send_raw,
    "eth_getTransactionByHash": tx_by_hash,
    "eth_getTransactionByBlockHashAndIndex": tx_by_block_hash_and_index,
    "eth_getTransactionByBlockNumberAndIndex": tx_by_block_number_and_index,
    "eth_getTransactionReceipt": tx_by_hash,
    "debug_getRawHeader": raw_by_block,
    "debug_getRawBlock": raw_by_block,
    "debug_getRawReceipts": raw_by_block,
    "debug_getRawBlockAccessList": raw_by_block,
    "debug_getRawTransaction": raw_tx_by_hash,
    "debug_traceBlockByNumber": trace_block_by_number,
    "debug_traceBlockByHash": trace_block_by_hash,
    "debug_traceTransaction": trace_transaction,
    "txpool_contentFrom": content_from,
}


# --- Judging -------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # pass, fail, missing
    detail: str = ""


def judge(spec: Spec, method: Method, case: Case, reply: Reply) -> Outcome:
    if reply.error is not None:
        return judge_error(spec, method, case, reply.error)
    if isinstance(case.expect, int):
        return Outcome("fail", f"expected error {case.expect}, got {short(reply.result)}")
    unmet = unmet_expectation(case.expect, reply.result)
    if unmet:
        return Outcome("fail", unmet)
    errors = list(spec.validator(case.schema or method.result).iter_errors(reply.result))
    if errors:
        leaves = [leaf for e in errors for leaf in closest_reasons(e)]
        return Outcome("fail", "; ".join(f"at {e.json_path}: {clip(e.message, 200)}" for e in leaves[:4]))
    return Outcome("pass")


def closest_reasons(error: ValidationError) -> list[ValidationError]:
    """The leaf errors under a failed oneOf/anyOf, taken from the branch that came
    closest: one of the instance's kind (JSON type, `type` field), with the fewest
    errors."""
    if not error.context:
        return [error]
    branches: dict[Any, list[ValidationError]] = {}
    for e in error.context:
        branches.setdefault(e.relative_schema_path[0], []).append(e)
    closest = min(branches.values(), key=lambda es: (any(map(other_kind, es)), len(es)))
    return [leaf for e in closest for leaf in closest_reasons(e)]


def other_kind(error: ValidationError) -> bool:
    wrong_json_type = error.validator == "type" and not error.relative_path
    wrong_type_field = bool(error.relative_path) and error.relative_path[-1] == "type"
    return wrong_json_type or wrong_type_field


def judge_error(spec: Spec, method: Method, case: Case, error: dict) -> Outcome:
    code, message = error.get("code"), error.get("message", "")
    if code == METHOD_NOT_FOUND:
        return Outcome("missing", f"{code} {message}")
    if code not in method.errors:
        return Outcome("fail", f"error {code} {message!r}, not one the spec lists for {method.name}")
    if isinstance(case.expect, int) and code != case.expect:
        return Outcome("fail", f"expected error {case.expect}, got {code} {message!r}")
    data_schema = method.errors[code].get("data")
    if data_schema is not None:
        data_error = best_match(spec.validator(data_schema).iter_errors(error.get("data")))
        if data_error is not None:
            return Outcome("fail", f"error {code}: data {short(error.get('data'))}: {data_error.message}")
    return Outcome("pass", "" if code == case.expect else f"spec error {code} {message!r}")


def unmet_expectation(expect: str, result: Any) -> str:
    if expect == "value" and result is None:
        return "got null for something the chain holds"
    if expect == "null" and result is not None:
        return f"expected null for something that does not exist, got {short(result)}"
    if expect == "entries" and not (isinstance(result, list) and result):
        return f"expected the entries the chain holds, got {short(result)}"
    return ""


def check_params(spec: Spec, method: Method, case: Case) -> None:
    """Our own requests must follow the spec, or a failure would mean nothing."""
    for param, value in zip(method.params, case.params):
        error = best_match(spec.validator(param["schema"]).iter_errors(value))
        if error is not None:
            raise AssertionError(f"{method.name} [{case.label}] param {param['name']!r}: {error.message}")


@dataclass
class Run:
    case: Case
    outcome: Outcome


def run_method(spec: Spec, method: Method, chain: Chain, rpc: Client) -> list[Run]:
    try:
        cases = BUILDERS.get(method.name, no_params)(Ctx(spec, method, chain, rpc))
    except SetupError as e:
        return [Run(Case("set-up", []), Outcome("fail", str(e)))]
    runs = []
    for case in cases:
        check_params(spec, method, case)
        try:
            reply = rpc.call(method.name, case.params)
        except TRANSPORT_ERRORS as e:
            runs.append(Run(case, Outcome("fail", f"{rpc.name}: {type(e).__name__}: {e}")))
            continue
        runs.append(Run(case, judge(spec, method, case, reply)))
    return runs


def status_of(runs: list[Run]) -> str:
    statuses = {r.outcome.status for r in runs}
    return "fail" if "fail" in statuses else "missing" if "missing" in statuses else "pass"


# --- Report --------------------------------------------------------------------


def detail_of(by_transport: dict[str, list[Run]]) -> str:
    """The first failure (and how many more), else the spec errors that passed."""
    runs = [(t, r) for t, rs in by_transport.items() for r in rs]
    bad = [(t, r) for t, r in runs if r.outcome.status != "pass"]
    if bad:
        transport, run = bad[0]
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        return f"[{transport}] {run.case.label}: {clip(run.outcome.detail, 110)}{more}"
    return "; ".join(sorted({r.outcome.detail for _, r in runs if r.outcome.detail}))


def print_table(results: dict[str, dict[str, list[Run]]]) -> None:
    width = max(len(m) for m in results)
    print(f"{'method':<{width}}  {'http':<7}  {'ws':<7}  detail")
    for name, by_transport in results.items():
        http, ws = (status_of(by_transport[t]) for t in ("http", "ws"))
        print(f"{name:<{width}}  {http:<7}  {ws:<7}  {detail_of(by_transport)}")


def print_failures(results: dict[str, dict[str, list[Run]]]) -> None:
    failures = [(name, t, r) for name, by_t in results.items() for t, runs in by_t.items()
                for r in runs if r.outcome.status == "fail"]
    if not failures:
        return
    print("\nfailures:")
    for name, transport, run in failures:
        print(f"- {name} [{transport}] {run.case.label}\n    params: {short(run.case.params, 500)}"
              f"\n    {run.outcome.detail}")


def method_status(by_transport: dict[str, list[Run]]) -> str:
    return status_of([r for runs in by_transport.values() for r in runs])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http", required=True, help="a node's HTTP JSON-RPC URL (a follower's, to test forwarding)")
    parser.add_argument("--ws", required=True, help="the same node's WebSocket URL")
    parser.add_argument("--mnemonic", default=DEV_MNEMONIC, help="funds accounts 0 and 1; the node signs for 0")
    parser.add_argument("--spec", type=Path, default=SPEC_DIR, help="a copy of ethereum/execution-apis")
    parser.add_argument("--only", action="append", metavar="METHOD", help="test only this method (repeatable)")
    parser.add_argument("--report", action="store_true", help="exit 0 whatever the methods answer")
    args = parser.parse_args()

    spec = Spec(args.spec)
    unbuilt = [m.name for m in spec.methods.values() if m.params and m.name not in BUILDERS]
    assert not unbuilt, f"no cases for {unbuilt}: add them to BUILDERS"
    unknown = sorted(set(args.only or []) - set(spec.methods))
    if unknown:
        parser.error(f"not in the spec: {', '.join(unknown)}")
    names = [m for m in spec.methods if not args.only or m in args.only]

    try:
        with connect(args.ws, max_size=None, proxy=None, open_timeout=TIMEOUT_S) as connection:
            http, ws = Http(args.http), Ws(connection)
            chain = set_up(http, dev_accounts(args.mnemonic, 2))
            recent = int(chain.recent["blockNumber"], 16)
            print(f"chain {chain.chain_id}: contract {chain.contract}, recent block {recent}\n")
            results = {name: {rpc.name: run_method(spec, spec.methods[name], chain, rpc) for rpc in (http, ws)}
                       for name in names}
    except (SetupError, *TRANSPORT_ERRORS) as e:
        print(f"conformance: cannot set up: {e}", file=sys.stderr)
        return 2

    print_table(results)
    print_failures(results)
    statuses = [method_status(by_transport) for by_transport in results.values()]
    passed, failed, missing = (statuses.count(s) for s in ("pass", "fail", "missing"))
    print(f"\nconformance: {passed} passed, {failed} failed, {missing} missing of {len(names)} methods")
    return 0 if args.report or passed == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())

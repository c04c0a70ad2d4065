#!/usr/bin/env python3
"""What a dapp developer does with web3.py, against a running baton cluster, through
a follower: deploy an ERC-20 and an ERC-721 (testnet/contracts/), transfer, approve,
decode custom errors, read history, page through logs like an indexer, subscribe
over WebSocket, send the way MetaMask does, and keep sending while the leader is
SIGKILLed. Any wrong answer ends the run with a non-zero exit and the reason.

    python3 testnet/clients.py --http http://127.0.0.1:28546 --ws ws://127.0.0.1:28546 \
        --nodes http://127.0.0.1:28545,http://127.0.0.1:28546,http://127.0.0.1:28547

The failover check kills the leader's `baton node` process on this machine (found
by the rpc_addr in its config file), so run it against a devnet you own
(testnet/rpc-suites.sh starts one). Checks that concern failover name the invariant
of DESIGN.md that they hold.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import threading
import time
import tomllib
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import requests
from eth_abi import abi
from eth_account import Account
from web3 import AsyncWeb3, Web3, WebSocketProvider
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

CONTRACTS = Path(__file__).resolve().parent / "contracts"
# Dev accounts 0-4 of the "test test … junk" mnemonic, as `baton devnet` prints them.
DEV_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
]
SUPPLY = 10**24
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
RECEIPT_TIMEOUT = 30
QUANTITY = re.compile(r"0x(0|[1-9a-f][0-9a-f]*)")
HASH = re.compile(r"0x[0-9a-f]{64}")
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
HEX = re.compile(r"0x[0-9a-f]+")


class Failure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


def load_contract(name):
    built = json.loads((CONTRACTS / f"{name}.json").read_text())
    return built["abi"], built["bytecode"]


def error_abi(contract_abi, name):
    return next(e for e in contract_abi if e["type"] == "error" and e["name"] == name)


def selector(entry):
    types = ",".join(i["type"] for i in entry["inputs"])
    return bytes(Web3.keccak(text=f"{entry['name']}({types})")[:4])


def rpc(url, method, params):
    """One raw JSON-RPC call; the whole answer (result or error)."""
    response = requests.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=30
    )
    expect(response.status_code == 200, f"{method} {params}: HTTP {response.status_code}")
    body = response.json()
    expect(body.get("jsonrpc") == "2.0" and body.get("id") == 1, f"{method}: bad envelope {body}")
    return body


def rpc_result(url, method, params):
    body = rpc(url, method, params)
    expect("error" not in body, f"{method} {params} answered {body.get('error')}")
    return body["result"]


def node_status(url):
    return rpc_result(url, "baton_nodeStatus", [])


def rpc_message(error):
    """The JSON-RPC error message in a web3 exception."""
    response = getattr(error, "rpc_response", None) or {}
    return (response.get("error") or {}).get("message", str(error))


def node_pid(rpc_url):
    """The pid of the `baton node` process whose config serves `rpc_url`'s port."""
    port = str(urlparse(rpc_url).port)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
            if argv[1:2] != ["node"] or "--config" not in argv:
                continue
            # A relative --config is relative to the node's own working dir.
            config = proc / "cwd" / argv[argv.index("--config") + 1]
            rpc_addr = tomllib.loads(config.read_text()).get("rpc_addr", "")
        except (OSError, IndexError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if rpc_addr.rsplit(":", 1)[-1] == port:
            found.append(int(proc.name))
    expect(len(found) == 1, f"expected one `baton node` process serving {rpc_url}, found pids {found}")
    return found[0]


class ClientTest:
    def __init__(self, http, ws, nodes):
        self.http, self.ws, self.nodes = http, ws, nodes
        self.w3 = Web3(Web3.HTTPProvider(http, request_kwargs={"timeout": 60}))
        self.accounts = [Account.from_key(k) for k in DEV_KEYS]
        self.token_abi, self.token_code = load_contract("Token")
        self.nft_abi, self.nft_code = load_contract("Nft")
        self.chain_id = self.token = self.nft = None
        # Every hash a node acknowledged, and the token transactions that each
        # emitted one Transfer event.
        self.acked = []
        self.token_transfers = []
        self.holders = {a.address for a in self.accounts}
        self.transfer_logs = []

    # -- helpers --------------------------------------------------------------

    def fees(self):
        tip = self.w3.eth.max_priority_fee
        return {"maxFeePerGas": self.w3.eth.gas_price * 2 + tip, "maxPriorityFeePerGas": tip}

    def send_signed(self, account, tx):
        """Signs `tx` with `account`'s key (pending nonce, fees, gas filled as a
        dapp's library does) and sends it raw; the acknowledged hash."""
        tx = {"from": account.address, "chainId": self.chain_id, **self.fees(), **tx}
        if "nonce" not in tx:
            tx["nonce"] = self.w3.eth.get_transaction_count(account.address, "pending")
        if "gas" not in tx:
            tx["gas"] = self.w3.eth.estimate_gas(tx)
        tx_hash = self.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        self.acked.append(tx_hash)
        return tx_hash

    def send_unlocked(self, call, sender):
        """`call.transact` from a dev account the node signs for (eth_sendTransaction)."""
        tx_hash = call.transact({"from": sender})
        self.acked.append(tx_hash)
        return tx_hash

    def receipt(self, tx_hash):
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
        expect(receipt["status"] == 1, f"transaction {tx_hash.to_0x_hex()} reverted: {dict(receipt)}")
        return receipt

    def signed_transfer(self, receiver, amount, nonce):
        """Account 0's token transfer, every field given (so building it asks no node)."""
        tx = self.token.functions.transfer(receiver, amount).build_transaction(
            {"from": self.accounts[0].address, "gas": 100_000, **self.fees(), "chainId": self.chain_id, "nonce": nonce}
        )
        return self.accounts[0].sign_transaction(tx).raw_transaction

    def fresh_address(self):
        address = Account.create().address
        self.holders.add(address)
        return address

    def token_balances(self, block="latest"):
        return {a: self.token.functions.balanceOf(a).call(block_identifier=block) for a in self.holders}

    # -- checks ---------------------------------------------------------------

    def check_follower(self):
        status = node_status(self.http)
        expect(status["role"] == "follower", f"--http {self.http} is not a follower: {status}")
        self.chain_id = self.w3.eth.chain_id
        unlocked = self.w3.eth.accounts
        expect(
            unlocked[: len(self.accounts)] == [a.address for a in self.accounts],
            f"eth_accounts {unlocked} are not the dev keys' addresses",
        )
        return f"node {status['id']}, leader {status['leaderId']}, term {status['term']}, chain id {self.chain_id}"

    def check_deploy_token_signed_locally(self):
        owner = self.accounts[0]
        deploy = self.w3.eth.contract(abi=self.token_abi, bytecode=self.token_code).constructor(SUPPLY)
        tx_hash = self.send_signed(owner, deploy.build_transaction({"from": owner.address}))
        receipt = self.receipt(tx_hash)
        expect(receipt["contractAddress"], f"deploy receipt has no contractAddress: {dict(receipt)}")
        self.token = self.w3.eth.contract(address=receipt["contractAddress"], abi=self.token_abi)
        self.token_transfers.append(tx_hash)
        expect(len(self.w3.eth.get_code(self.token.address)) > 0, "no code at the token's address")
        expect(self.token.functions.totalSupply().call() == SUPPLY, "totalSupply is not the minted supply")
        expect(self.token.functions.balanceOf(owner.address).call() == SUPPLY, "the deployer does not hold the supply")
        minted = self.token.events.Transfer().process_receipt(receipt)
        expect(
            [(e.args.sender, e.args.receiver, e.args.value) for e in minted]
            == [(ZERO_ADDRESS, owner.address, SUPPLY)],
            f"constructor Transfer events: {minted}",
        )
        return f"{self.token.address} in block {receipt['blockNumber']}"

    def check_deploy_nft_signed_by_node(self):
        minter = self.w3.eth.accounts[1]
        deploy = self.w3.eth.contract(abi=self.nft_abi, bytecode=self.nft_code).constructor()
        tx_hash = self.send_unlocked(deploy, minter)
        receipt = self.receipt(tx_hash)
        expect(self.w3.eth.get_transaction(tx_hash)["from"] == minter, "the node signed as another account")
        self.nft = self.w3.eth.contract(address=receipt["contractAddress"], abi=self.nft_abi)
        expect(self.nft.functions.minter().call() == minter, "the NFT's minter is not its deployer")
        return f"{self.nft.address} via eth_sendTransaction from {minter}"

    def check_token_transfer(self):
        owner, receiver = self.accounts[0], self.accounts[1].address
        before = self.token_balances()
        tx_hash = self.send_signed(owner, self.token.functions.transfer(receiver, 1000).build_transaction({"from": owner.address}))
        receipt = self.receipt(tx_hash)
        self.token_transfers.append(tx_hash)
        events = self.token.events.Transfer().process_receipt(receipt)
        expect(
            [(e.args.sender, e.args.receiver, e.args.value) for e in events] == [(owner.address, receiver, 1000)],
            f"Transfer events: {events}",
        )
        after = self.token_balances()
        expect(after[owner.address] == before[owner.address] - 1000, "sender's balance did not drop by 1000")
        expect(after[receiver] == before[receiver] + 1000, "receiver's balance did not rise by 1000")

    def check_approve_transfer_from(self):
        owner, spender, receiver = self.accounts[0], self.w3.eth.accounts[1], self.accounts[2].address
        approve = self.token.functions.approve(spender, 500).build_transaction({"from": owner.address})
        receipt = self.receipt(self.send_signed(owner, approve))
        approvals = self.token.events.Approval().process_receipt(receipt)
        expect(
            [(e.args.owner, e.args.spender, e.args.value) for e in approvals] == [(owner.address, spender, 500)],
            f"Approval events: {approvals}",
        )
        expect(self.token.functions.allowance(owner.address, spender).call() == 500, "allowance is not 500")
        before = self.token_balances()
        tx_hash = self.send_unlocked(self.token.functions.transferFrom(owner.address, receiver, 300), spender)
        receipt = self.receipt(tx_hash)
        self.token_transfers.append(tx_hash)
        events = self.token.events.Transfer().process_receipt(receipt)
        expect(
            [(e.args.sender, e.args.receiver, e.args.value) for e in events] == [(owner.address, receiver, 300)],
            f"transferFrom's Transfer events: {events}",
        )
        expect(self.token.functions.allowance(owner.address, spender).call() == 200, "allowance is not 500 - 300")
        after = self.token_balances()
        expect(after[owner.address] == before[owner.address] - 300 and after[receiver] == before[receiver] + 300,
               "transferFrom moved the wrong amounts")

    def check_nft_mint_and_transfer(self):
        minter, holder, receiver = self.w3.eth.accounts[1], self.accounts[0], self.accounts[2].address
        receipt = self.receipt(self.send_unlocked(self.nft.functions.mint(holder.address, 7), minter))
        minted = self.nft.events.Transfer().process_receipt(receipt)
        expect([(e.args.sender, e.args.receiver, e.args.tokenId) for e in minted]
               == [(ZERO_ADDRESS, holder.address, 7)], f"mint events: {minted}")
        expect(self.nft.functions.ownerOf(7).call() == holder.address, "ownerOf(7) is not the minted-to account")
        move = self.nft.functions.transferFrom(holder.address, receiver, 7).build_transaction({"from": holder.address})
        receipt = self.receipt(self.send_signed(holder, move))
        moved = self.nft.events.Transfer().process_receipt(receipt)
        expect([(e.args.sender, e.args.receiver, e.args.tokenId) for e in moved] == [(holder.address, receiver, 7)],
               f"transfer events: {moved}")
        expect(self.nft.functions.ownerOf(7).call() == receiver, "ownerOf(7) did not change")
        expect(self.nft.functions.balanceOf(receiver).call() == 1 and self.nft.functions.balanceOf(holder.address).call() == 0,
               "NFT balances are wrong after the transfer")

    def expect_custom_error(self, what, attempt, entry, args):
        try:
            attempt()
        except ContractCustomError as e:
            data = bytes.fromhex(e.data.removeprefix("0x"))
        else:
            raise Failure(f"{what} did not revert")
        expect(data[:4] == selector(entry), f"{what}: selector {data[:4].hex()} is not {entry['name']}'s")
        decoded = abi.decode([i["type"] for i in entry["inputs"]], data[4:])
        expect(list(decoded) == args, f"{what}: {entry['name']} args {decoded}, expected {args}")

    def check_custom_errors(self):
        owner, spender = self.accounts[0].address, self.w3.eth.accounts[1]
        balance = self.token.functions.balanceOf(owner).call()
        transfer = self.token.functions.transfer(spender, balance + 1)
        insufficient_balance = error_abi(self.token_abi, "InsufficientBalance")
        self.expect_custom_error("eth_call transfer", lambda: transfer.call({"from": owner}),
                                 insufficient_balance, [balance, balance + 1])
        self.expect_custom_error("eth_estimateGas transfer", lambda: transfer.estimate_gas({"from": owner}),
                                 insufficient_balance, [balance, balance + 1])
        allowed = self.token.functions.allowance(owner, spender).call()
        transfer_from = self.token.functions.transferFrom(owner, spender, allowed + 1)
        self.expect_custom_error("eth_estimateGas transferFrom", lambda: transfer_from.estimate_gas({"from": spender}),
                                 error_abi(self.token_abi, "InsufficientAllowance"), [allowed, allowed + 1])
        # The wire shape under web3's exception: geth's code 3 and the revert bytes.
        call = {"from": owner, "to": self.token.address, "data": self.token.encode_abi("transfer", [spender, balance + 1])}
        for method, params in (("eth_call", [call, "latest"]), ("eth_estimateGas", [call])):
            error = rpc(self.http, method, params).get("error") or {}
            expect(error.get("code") == 3 and error.get("message", "").startswith("execution reverted"),
                   f"{method} of a reverting transfer answered {error}, expected code 3 'execution reverted…'")
            expected = "0x" + (selector(insufficient_balance) + abi.encode(["uint256", "uint256"], [balance, balance + 1])).hex()
            expect(error.get("data") == expected, f"{method}: revert data {error.get('data')}, expected {expected}")

    def check_reason_string(self):
        stranger = self.accounts[3].address
        attempt = self.nft.functions.transferFrom(stranger, stranger, 7)
        for what, run in (("eth_call", lambda: attempt.call({"from": stranger})),
                          ("eth_estimateGas", lambda: attempt.estimate_gas({"from": stranger}))):
            try:
                run()
            except ContractCustomError as e:
                raise Failure(f"{what}: an Error(string) revert came as a custom error: {e.data}")
            except ContractLogicError as e:
                expect(e.message == "execution reverted: not the owner", f"{what}: message {e.message!r}")
                expect(str(e.data).startswith("0x08c379a0"), f"{what}: data {e.data} is not Error(string)")
            else:
                raise Failure(f"{what} of a non-owner's NFT transfer did not revert")

    def check_back_to_back_pending_nonce(self):
        owner = self.accounts[0]
        receivers = [self.fresh_address() for _ in range(4)]
        start = self.w3.eth.get_transaction_count(owner.address, "pending")
        hashes = []
        for i in range(20):
            nonce = self.w3.eth.get_transaction_count(owner.address, "pending")
            expect(nonce == start + i, f"send {i}: pending nonce {nonce}, expected {start + i} "
                   "(the previous acknowledged transaction is not in the pending state)")
            try:
                tx_hash = self.w3.eth.send_raw_transaction(self.signed_transfer(receivers[i % 4], 1 + i, nonce))
            except Web3RPCError as e:
                raise Failure(f"send {i} (nonce {nonce}) refused: {rpc_message(e)}")
            self.acked.append(tx_hash)
            hashes.append(tx_hash)
        expect(len(set(hashes)) == 20, "two sends got the same hash")
        receipts = [self.receipt(h) for h in hashes]
        self.token_transfers.extend(hashes)
        for h, r in zip(hashes, receipts):
            block = self.w3.eth.get_block(r["blockNumber"])
            expect(block["hash"] == r["blockHash"] and block["transactions"].count(h) == 1,
                   f"{h.to_0x_hex()} is not exactly once in block {r['blockNumber']}")
        latest = self.w3.eth.get_transaction_count(owner.address, "latest")
        expect(latest == start + 20, f"latest nonce {latest} after 20 sends from {start}")
        blocks = sorted({r["blockNumber"] for r in receipts})
        return f"nonces {start}..{start + 19} in blocks {blocks[0]}..{blocks[-1]}"

    def check_websocket_subscriptions(self):
        return asyncio.run(self.websocket_subscriptions())

    async def websocket_subscriptions(self):
        owner, receiver = self.accounts[0], self.fresh_address()
        async with AsyncWeb3(WebSocketProvider(self.ws)) as aw3:
            heads_id = await aw3.eth.subscribe("newHeads")
            logs_id = await aw3.eth.subscribe("logs", {"address": self.token.address})
            for sub in (heads_id, logs_id):
                expect(isinstance(sub, str) and HEX.fullmatch(sub), f"subscription id {sub!r} is not a 0x hex string")
            expect(heads_id != logs_id, "two subscriptions got one id")
            sent = []
            for i in range(5):
                nonce = await aw3.eth.get_transaction_count(owner.address, "pending")
                sent.append(await aw3.eth.send_raw_transaction(self.signed_transfer(receiver, 10 + i, nonce)))
            self.acked.extend(sent)
            self.token_transfers.extend(sent)
            heads, logs = await self.collect(aw3, heads_id, logs_id, sent)
            expect(await aw3.eth.unsubscribe(heads_id) and await aw3.eth.unsubscribe(logs_id), "eth_unsubscribe answered false")
        for prev, head in zip(heads, heads[1:]):
            expect(head["number"] == prev["number"] + 1 and head["parentHash"] == prev["hash"],
                   f"newHeads skipped or forked: {prev['number']} {prev['hash'].to_0x_hex()} then {head['number']} {head['parentHash'].to_0x_hex()}")
        by_number = {h["number"]: h["hash"] for h in heads}
        for log in logs:
            expect(log["address"] == self.token.address and not log["removed"], f"unexpected log {log}")
            expect(by_number.get(log["blockNumber"]) == log["blockHash"], f"log in block {log['blockNumber']} not on the heads received")
        return f"ids {heads_id}, {logs_id}; {len(heads)} heads, {len(logs)} Transfer logs"

    async def collect(self, aw3, heads_id, logs_id, sent):
        """newHeads and the logs of `sent` until every log is in, a head covers each,
        and at least three heads came."""
        heads, logs = [], []
        wanted = Counter(bytes(h) for h in sent)
        try:
            async with asyncio.timeout(RECEIPT_TIMEOUT):
                async for message in aw3.socket.process_subscriptions():
                    if message["subscription"] == heads_id:
                        heads.append(message["result"])
                    elif message["subscription"] == logs_id:
                        logs.append(message["result"])
                    got = Counter(bytes(log["transactionHash"]) for log in logs)
                    expect(all(got[h] <= 1 for h in got), f"a transaction's log came twice: {got}")
                    if got == wanted and len(heads) >= 3 and heads[-1]["number"] >= max(log["blockNumber"] for log in logs):
                        return heads, logs
        except TimeoutError:
            raise Failure(f"after {RECEIPT_TIMEOUT} s: {len(heads)} heads, logs of {len(logs)} of {len(sent)} transfers")
        raise Failure("the subscription stream ended")

    def check_log_paging(self, window=3):
        head = self.w3.eth.block_number
        logs, seen = [], set()
        topic = self.token.events.Transfer().topic
        for start in range(0, head + 1, window):
            end = min(start + window - 1, head)
            page = self.w3.eth.get_logs({"address": self.token.address, "topics": [topic], "fromBlock": start, "toBlock": end})
            for log in page:
                expect(start <= log["blockNumber"] <= end, f"window {start}..{end} returned a log of block {log['blockNumber']}")
                key = (log["blockHash"], log["logIndex"])
                expect(key not in seen, f"log {key} returned twice")
                seen.add(key)
            positions = [(log["blockNumber"], log["logIndex"]) for log in page]
            expect(positions == sorted(positions), f"window {start}..{end}: logs out of order {positions}")
            logs.extend(page)
        got = Counter(bytes(log["transactionHash"]) for log in logs)
        wanted = Counter(bytes(h) for h in self.token_transfers)
        expect(got == wanted, f"Transfer logs by transaction {got}, expected one for each of {len(wanted)} transfers")
        self.transfer_logs = [self.token.events.Transfer().process_log(log) for log in logs]
        return f"{len(logs)} Transfer logs in {(head + window) // window} windows of {window} blocks up to {head}"

    def check_history(self):
        # ETH: two payments to a fresh address, in two blocks; its balance at each block since.
        payer, sink = self.accounts[0], self.fresh_address()
        first = self.receipt(self.send_signed(payer, {"to": sink, "value": 10**9, "gas": 21000}))["blockNumber"]
        second = self.receipt(self.send_signed(payer, {"to": sink, "value": 2 * 10**9, "gas": 21000}))["blockNumber"]
        for n in range(first - 1, second + 1):
            expected = (10**9 if n >= first else 0) + (2 * 10**9 if n >= second else 0)
            got = self.w3.eth.get_balance(sink, block_identifier=n)
            expect(got == expected, f"eth_getBalance({sink}, {n}) = {got}, expected {expected}")
        # Token: balanceOf at each block with a Transfer, and the one before it, against
        # the balances replayed from the Transfer logs up to there.
        checked = 0
        for n in sorted({e.blockNumber for e in self.transfer_logs} | {e.blockNumber - 1 for e in self.transfer_logs[1:]}):
            ledger = Counter()
            for event in (e for e in self.transfer_logs if e.blockNumber <= n):
                ledger[event.args.sender] -= event.args.value
                ledger[event.args.receiver] += event.args.value
            for holder, balance in self.token_balances(block=n).items():
                expect(balance == ledger[holder], f"balanceOf({holder}) at block {n} = {balance}, the logs say {ledger[holder]}")
                checked += 1
        return f"ETH at blocks {first - 1}..{second}, {checked} token balances at older blocks"

    def check_metamask_send(self):
        sender, receiver = self.accounts[3], self.fresh_address()

        def call(method, *params):
            return rpc_result(self.http, method, list(params))

        def quantity(method, *params):
            value = call(method, *params)
            expect(isinstance(value, str) and QUANTITY.fullmatch(value), f"{method} answered {value!r}, not a quantity")
            return int(value, 16)

        chain_id = call("eth_chainId")
        expect(chain_id == hex(self.chain_id), f"eth_chainId answered {chain_id!r}")
        version = call("net_version")
        expect(version == str(self.chain_id), f"net_version answered {version!r}, not the chain id in decimal")
        quantity("eth_blockNumber")
        balance = quantity("eth_getBalance", sender.address, "latest")
        quantity("eth_gasPrice")
        history = call("eth_feeHistory", "0x5", "latest", [10, 20, 30])
        self.expect_fee_history(history)
        tip = int(history["reward"][-1][1], 16)
        max_fee = 2 * int(history["baseFeePerGas"][-1], 16) + tip
        tx = {"from": sender.address, "to": receiver, "value": hex(10**15)}
        gas = call("eth_estimateGas", tx)
        expect(gas == "0x5208", f"eth_estimateGas of a plain transfer answered {gas}, expected 0x5208")
        nonce = quantity("eth_getTransactionCount", sender.address, "pending")
        signed = sender.sign_transaction({
            "type": 2, "chainId": self.chain_id, "nonce": nonce, "to": receiver, "value": 10**15,
            "gas": int(gas, 16), "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip,
        })
        tx_hash = call("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())
        expect(tx_hash == signed.hash.to_0x_hex(), f"eth_sendRawTransaction answered {tx_hash}, expected {signed.hash.to_0x_hex()}")
        self.acked.append(signed.hash)
        receipt = self.poll_receipt(tx_hash)
        self.expect_receipt_shape(receipt, tx_hash, sender.address, receiver)
        expect(quantity("eth_getBalance", receiver, "latest") == 10**15, "the receiver did not get the value")
        spent = balance - quantity("eth_getBalance", sender.address, "latest")
        cost = 10**15 + int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        expect(spent == cost, f"the sender spent {spent}, expected value + gas = {cost}")
        return f"{tx_hash} in block {int(receipt['blockNumber'], 16)}"

    def expect_fee_history(self, history):
        expect(QUANTITY.fullmatch(history.get("oldestBlock", "")), f"eth_feeHistory oldestBlock: {history}")
        blocks = len(history["gasUsedRatio"])
        expect(1 <= blocks <= 5, f"eth_feeHistory covered {blocks} blocks for a count of 5")
        expect(len(history["baseFeePerGas"]) == blocks + 1, f"eth_feeHistory baseFeePerGas: {history}")
        expect(all(QUANTITY.fullmatch(f) for f in history["baseFeePerGas"]), f"eth_feeHistory baseFeePerGas: {history}")
        expect(all(isinstance(r, (int, float)) and 0 <= r <= 1 for r in history["gasUsedRatio"]), f"gasUsedRatio: {history}")
        rewards = history.get("reward")
        expect(isinstance(rewards, list) and len(rewards) == blocks
               and all(len(r) == 3 and all(QUANTITY.fullmatch(x) for x in r) for r in rewards),
               f"eth_feeHistory reward for percentiles [10, 20, 30]: {history}")

    def poll_receipt(self, tx_hash):
        deadline = time.monotonic() + RECEIPT_TIMEOUT
        while (receipt := rpc_result(self.http, "eth_getTransactionReceipt", [tx_hash])) is None:
            expect(time.monotonic() < deadline, f"no receipt for {tx_hash} after {RECEIPT_TIMEOUT} s")
            time.sleep(0.25)
        return receipt

    @staticmethod
    def expect_receipt_shape(receipt, tx_hash, sender, receiver):
        shapes = {
            "transactionHash": HASH, "blockHash": HASH, "blockNumber": QUANTITY, "transactionIndex": QUANTITY,
            "from": ADDRESS, "to": ADDRESS, "cumulativeGasUsed": QUANTITY, "gasUsed": QUANTITY,
            "effectiveGasPrice": QUANTITY, "status": QUANTITY, "type": QUANTITY, "logsBloom": re.compile(r"0x[0-9a-f]{512}"),
        }
        for field, shape in shapes.items():
            expect(isinstance(receipt.get(field), str) and shape.fullmatch(receipt[field]),
                   f"receipt field {field} = {receipt.get(field)!r}")
        expect(receipt["transactionHash"] == tx_hash and receipt["status"] == "0x1" and receipt["type"] == "0x2",
               f"receipt {receipt}")
        expect(receipt["from"].lower() == sender.lower() and receipt["to"].lower() == receiver.lower(), f"receipt {receipt}")
        expect(receipt["gasUsed"] == "0x5208" and receipt["logs"] == [] and receipt.get("contractAddress", 0) is None,
               f"receipt {receipt}")

    # -- failover ---------------------------------------------------------------

    def check_kill_leader_while_sending(self, before_kill=10, after_kill=20):
        statuses = {url: node_status(url) for url in self.nodes}
        leaders = [url for url, s in statuses.items() if s["role"] == "leader"]
        expect(len(leaders) == 1, f"expected one leader, statuses {statuses}")
        self.killed = leaders[0]
        expect(self.killed != self.http, f"the --http node {self.http} leads now; the test sends through a follower")
        old_term = statuses[self.killed]["term"]
        pid = node_pid(self.killed)
        killed = threading.Event()

        def kill():
            os.kill(pid, signal.SIGKILL)
            killed.set()

        sender, sink = self.accounts[4], Account.create().address
        sent, sent_after_kill, slowest, refusals = 0, 0, 0.0, 0
        while sent_after_kill < after_kill:
            if sent == before_kill:
                # Lands while the next sends are on their way to the leader.
                threading.Timer(0.05, kill).start()
            after_kill_started = killed.is_set()
            took, refused = self.send_through_failover(sender, {"to": sink, "value": 1, "gas": 21000})
            sent, sent_after_kill = sent + 1, sent_after_kill + after_kill_started
            slowest, refusals = max(slowest, took), refusals + refused
        try:
            requests.post(self.killed, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}, timeout=5)
            raise Failure(f"{self.killed} still answers after kill -9 of pid {pid}")
        except requests.ConnectionError:
            pass
        self.survivors = [url for url in self.nodes if url != self.killed]
        leader, term = self.wait_for_new_leader(old_term)
        return (f"killed node {statuses[self.killed]['id']} (pid {pid}, term {old_term}) mid-stream; {sent} transfers "
                f"acknowledged through {self.http} ({sent_after_kill} begun after the kill; slowest {slowest:.2f} s, "
                f"{refusals} 'no leader' refusals or connection errors retried); node {leader} leads in term {term}")

    def send_through_failover(self, account, tx, patience=30):
        """Sends like a wallet across a failover: pending nonce, then the same signed
        bytes again only on a connection error or the node's explicit 'no leader'.
        How long it took to be acknowledged, and how many tries were refused."""
        nonce = self.w3.eth.get_transaction_count(account.address, "pending")
        raw = account.sign_transaction({**tx, **self.fees(), "chainId": self.chain_id, "nonce": nonce}).raw_transaction
        start = time.monotonic()
        refused = 0
        while True:
            try:
                self.acked.append(self.w3.eth.send_raw_transaction(raw))
                return time.monotonic() - start, refused
            except requests.ConnectionError as e:
                why = f"connection error: {e}"
            except Web3RPCError as e:
                why = rpc_message(e)
                expect("no leader" in why, f"nonce {nonce} refused during failover: {why!r} (hash {Web3.keccak(raw).to_0x_hex()})")
            refused += 1
            expect(time.monotonic() - start < patience, f"nonce {nonce} not acknowledged within {patience} s: {why}")
            time.sleep(0.2)

    def wait_for_new_leader(self, old_term, patience=10):
        """The survivors' one leader, in a term after `old_term`, that every
        survivor in that term names."""
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            statuses = [node_status(url) for url in self.survivors]
            leaders = [s for s in statuses if s["role"] == "leader" and s["term"] > old_term]
            expect(len(leaders) <= 1, f"invariant 2: two leaders after the kill: {leaders}")
            if leaders:
                leader = leaders[0]
                for status in statuses:
                    expect(status["term"] != leader["term"] or status["leaderId"] == leader["id"],
                           f"invariant 2: in term {leader['term']} node {status['id']} names leader {status['leaderId']}, "
                           f"not {leader['id']}")
                return leader["id"], leader["term"]
            time.sleep(0.1)
        raise Failure(f"no new leader among {self.survivors} within {patience} s")

    def survivor_chains(self):
        """Each survivor's chain (block dicts by number) once it holds every acknowledged transaction."""
        receipts = [self.receipt(h) for h in self.acked]
        top = max(r["blockNumber"] for r in receipts)
        chains = {}
        for url in self.survivors:
            w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
            deadline = time.monotonic() + RECEIPT_TIMEOUT
            while w3.eth.block_number < top:
                expect(time.monotonic() < deadline, f"{url} stays below block {top}")
                time.sleep(0.2)
            head = w3.eth.block_number
            chains[url] = [w3.eth.get_block(n) for n in range(head + 1)]
        return chains

    def check_acknowledged_exactly_once(self):
        self.chains = self.survivor_chains()
        for url, chain in self.chains.items():
            places = {}
            for block in chain:
                for tx_hash in block["transactions"]:
                    places.setdefault(bytes(tx_hash), []).append(block["number"])
            for tx_hash in self.acked:
                found = places.get(bytes(tx_hash), [])
                expect(len(found) == 1, f"invariant 3: acknowledged {tx_hash.to_0x_hex()} is in blocks {found} on {url}")
            twice = {h.hex(): n for h, n in places.items() if len(n) > 1}
            expect(not twice, f"invariant 3: transactions in more than one block on {url}: {twice}")
        return f"{len(self.acked)} acknowledged transactions (the whole run) on {', '.join(self.chains)}"

    def check_survivors_identical(self):
        chains = list(self.chains.values())
        common = min(len(c) for c in chains)
        for n in range(common):
            hashes = {c[n]["hash"] for c in chains}
            expect(len(hashes) == 1, f"invariant 4: block {n} has hashes {[h.to_0x_hex() for h in hashes]} on {list(self.chains)}")
        return f"same hash at every height 0..{common - 1}"

    def check_heights_contiguous(self):
        for url, chain in self.chains.items():
            for n, block in enumerate(chain):
                expect(block["number"] == n, f"invariant 2: {url} answered block {block['number']} for height {n}")
                if n:
                    expect(block["parentHash"] == chain[n - 1]["hash"],
                           f"invariant 2: block {n} on {url} does not build on block {n - 1}")
        return "no gap, no duplicate, each block on its parent"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http", required=True, help="a follower's HTTP JSON-RPC URL")
    parser.add_argument("--ws", required=True, help="the same follower's WebSocket URL")
    parser.add_argument("--nodes", required=True, help="every node's HTTP URL, comma-separated")
    args = parser.parse_args()
    args.http = args.http.rstrip("/")
    args.nodes = [url.rstrip("/") for url in args.nodes.split(",")]
    if args.http not in args.nodes:
        parser.error("--http must be one of --nodes")
    return args


def main():
    args = parse_args()
    test = ClientTest(args.http, args.ws, args.nodes)
    checks = [
        ("the --http node is a follower; dev keys are the unlocked accounts", test.check_follower),
        ("deploy ERC-20, signed locally, via eth_sendRawTransaction", test.check_deploy_token_signed_locally),
        ("deploy ERC-721, signed by the node, via eth_sendTransaction", test.check_deploy_nft_signed_by_node),
        ("token transfer: balances and Transfer event", test.check_token_transfer),
        ("approve then transferFrom (node-signed): allowance, balances, events", test.check_approve_transfer_from),
        ("NFT mint and transferFrom: ownerOf, balanceOf, Transfer events", test.check_nft_mint_and_transfer),
        ("custom errors decoded from eth_call and eth_estimateGas (code 3, revert data)", test.check_custom_errors),
        ("reason-string revert from eth_call and eth_estimateGas", test.check_reason_string),
        ("20 back-to-back sends, pending nonce each time: each lands once", test.check_back_to_back_pending_nonce),
        ("WebSocket newHeads and logs subscriptions while sending", test.check_websocket_subscriptions),
        ("eth_getLogs paged like an indexer: every Transfer once", test.check_log_paging),
        ("balances at older blocks", test.check_history),
        ("MetaMask's send sequence, raw JSON-RPC", test.check_metamask_send),
        ("failover: SIGKILL the leader while sending through the follower: every send acknowledged, one new leader "
         "(invariant 2: one writer per term)", test.check_kill_leader_while_sending),
        ("failover: every acknowledged transaction in exactly one block on every survivor "
         "(invariant 3: acknowledged means committed)", test.check_acknowledged_exactly_once),
        ("failover: survivors' chains identical up to the lower head "
         "(invariant 4: deterministic apply)", test.check_survivors_identical),
        ("failover: block numbers without gap or duplicate, each on its parent "
         "(invariant 2: one writer per term, built on everything it holds)", test.check_heights_contiguous),
    ]
    for passed, (name, check) in enumerate(checks):
        try:
            detail = check()
        except Exception as e:  # any exception is a failed check, with its reason
            reason = str(e) if isinstance(e, Failure) else f"{type(e).__name__}: {e}"
            print(f"FAIL {name}\n     {reason}", flush=True)
            print(f"clients: {passed} passed, 1 failed")
            sys.exit(1)
        print(f"ok  {name}" + (f": {detail}" if detail else ""), flush=True)
    print(f"clients: {len(checks)} passed, 0 failed")


if __name__ == "__main__":
    main()

# Benchmark (issue 14): send -> first preconfirmation frame carrying the
# transaction, read on one follower's `newFlashblocks` stream while the probe is
# sent through the other follower, with and without a write load on all nodes.
#
#   scripts/devnet &   # then, with web3.py's venv (it brings `websockets`):
#   ~/.cache/baton/venv/bin/python testnet/preconf-latency.py --probes 200 --load 0
#   ~/.cache/baton/venv/bin/python testnet/preconf-latency.py --probes 300 --load 8
#
# --load N: N threads, each sending eth_sendTransaction back-to-back from its own
# dev account, spread over the three nodes. The report says the load's rate, so a
# figure is read against what the machine sustained while it was taken.
# --sync: the probes are eth_sendRawTransactionSync (signed here, from dev account
# 0), and the time to its answer (the preconfirmed receipt) is reported too.
import argparse
import asyncio
import json
import threading
import time
import urllib.request

import websockets
from eth_account import Account

BASE = 8545
TO = "0x" + "77" * 20
# Dev account 0 of the "test test ... junk" mnemonic (anvil's, the devnet's).
KEY0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def rpc(port, method, params=()):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def send(port, sender):
    out = rpc(port, "eth_sendTransaction", [{"from": sender, "to": TO, "value": "0x1"}])
    if "result" not in out:
        raise RuntimeError(f"refused: {out}")
    return out["result"]


def load(ports, sender, stop, sent):
    i = 0
    while not stop.is_set():
        try:
            send(ports[i % len(ports)], sender)
            sent[0] += 1
        except Exception:
            time.sleep(0.05)
        i += 1


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--load", type=int, default=0)
    ap.add_argument("--every-ms", type=int, default=100)
    ap.add_argument("--sync", action="store_true")
    args = ap.parse_args()

    ports = [BASE, BASE + 1, BASE + 2]
    roles = {p: rpc(p, "baton_nodeStatus")["result"]["role"] for p in ports}
    followers = [p for p in ports if roles[p] != "leader"]
    sender_port, watch_port = followers[0], followers[1]
    accounts = rpc(sender_port, "eth_accounts")["result"]
    assert len(accounts) > args.load, f"{len(accounts)} unlocked accounts, need {args.load + 1}"
    assert accounts[0].lower() == Account.from_key(KEY0).address.lower(), "dev account 0 is not the mnemonic's"

    seen = {}
    async with websockets.connect(f"ws://127.0.0.1:{watch_port}", max_size=None) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newFlashblocks"]}))
        await ws.recv()

        async def watch():
            async for message in ws:
                now = time.perf_counter()
                frame = json.loads(message).get("params", {}).get("result", {})
                for tx in frame.get("metadata", {}).get("receipts", {}):
                    seen.setdefault(tx, now)

        watcher = asyncio.create_task(watch())
        stop, sent = threading.Event(), [0]
        threads = [threading.Thread(target=load, args=(ports, accounts[1 + i], stop, sent), daemon=True) for i in range(args.load)]
        for t in threads:
            t.start()
        await asyncio.sleep(2 if args.load else 0)
        load_start, load_sent = time.perf_counter(), sent[0]

        probes, answered = [], []
        signer = Account.from_key(KEY0)
        nonce = int(rpc(sender_port, "eth_getTransactionCount", [signer.address, "pending"])["result"], 16)
        chain_id = int(rpc(sender_port, "eth_chainId")["result"], 16)
        for _ in range(args.probes):
            if args.sync:
                tx = {"to": TO, "value": 1, "gas": 21000, "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 1,
                      "nonce": nonce, "chainId": chain_id, "type": 2}
                raw = "0x" + signer.sign_transaction(tx).raw_transaction.hex().removeprefix("0x")
                nonce += 1
                at = time.perf_counter()
                out = await asyncio.to_thread(rpc, sender_port, "eth_sendRawTransactionSync", [raw])
                if "result" not in out:
                    raise RuntimeError(f"refused: {out}")
                answered.append((time.perf_counter() - at) * 1000)
                tx = out["result"]["transactionHash"]
            else:
                at = time.perf_counter()
                tx = await asyncio.to_thread(send, sender_port, accounts[0])
            probes.append((tx, at))
            await asyncio.sleep(args.every_ms / 1000)
        rate = (sent[0] - load_sent) / (time.perf_counter() - load_start)
        await asyncio.sleep(3)
        stop.set()
        watcher.cancel()

    latencies = [(seen[tx] - at) * 1000 for tx, at in probes if tx in seen]
    missing = len(probes) - len(latencies)
    print(f"load: {args.load} senders, {rate:.0f} tx/s while probing")
    print(f"send (follower :{sender_port}) -> first frame (follower :{watch_port}) over {len(latencies)} probes, "
          f"{missing} never seen: p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
          f"max {max(latencies):.1f} ms")
    if answered:
        print(f"eth_sendRawTransactionSync (follower :{sender_port}) -> preconfirmed receipt over {len(answered)} probes: "
              f"p50 {percentile(answered, 50):.1f} ms, p99 {percentile(answered, 99):.1f} ms")


asyncio.run(main())

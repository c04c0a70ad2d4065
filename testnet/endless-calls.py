# Benchmark (issue 13): 8 clients send `eth_call`s of an endless loop to the leader
# of a running devnet for 60 s, each call at the full gas cap, while one honest
# client sends transfers through the leader. Reports, idle and under the flood:
# honest acknowledgement p50/p99, block interval p50/p99 (head changes seen by
# polling every 5 ms), and leader changes. The honest client's transfers name their
# gas (as a pre-signed transfer does); without it each would wait for an estimate on
# the RPC execution pool, which the flood holds (pass --estimate to see that).
#
#   scripts/devnet &   # then:
#   python3 testnet/endless-calls.py
import json
import statistics
import sys
import threading
import time
import urllib.request

BASE = 8545
ENDLESS = "0x5b600056"  # JUMPDEST PUSH1 0 JUMP, as contract creation: loops until out of gas
ESTIMATE = "--estimate" in sys.argv


def rpc(port, method, params=(), timeout=30):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    req = urllib.request.Request(f"http://127.0.0.1:{port}", data=body.encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))] if s else float("nan")


def watch_heads(port, stop, arrivals):
    last = None
    while not stop.is_set():
        n = int(rpc(port, "eth_blockNumber")["result"], 16)
        if n != last:
            arrivals.append(time.monotonic())
            last = n
        time.sleep(0.005)


def honest(port, account, seconds, acks):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        tx = {"from": account, "to": "0x" + "42" * 20, "value": "0x1"}
        if not ESTIMATE:
            tx["gas"] = "0x5208"
        out = rpc(port, "eth_sendTransaction", [tx])
        if "result" in out:
            acks.append((time.monotonic() - t) * 1000)
        time.sleep(0.05)


def flood(port, stop, answers):
    while not stop.is_set():
        try:
            out = rpc(port, "eth_call", [{"data": ENDLESS}, "latest"], timeout=60)
            answers.append(out.get("error", {}).get("message", "ok"))
        except Exception as e:
            answers.append(type(e).__name__)


def phase(leader, account, seconds, flooders):
    stop, arrivals, acks, answers = threading.Event(), [], [], []
    threads = [threading.Thread(target=watch_heads, args=(leader, stop, arrivals))]
    threads += [threading.Thread(target=flood, args=(leader, stop, answers)) for _ in range(flooders)]
    for t in threads:
        t.start()
    honest(leader, account, seconds, acks)
    stop.set()
    for t in threads:
        t.join()
    intervals = [(b - a) * 1000 for a, b in zip(arrivals[1:], arrivals[2:])]
    return acks, intervals, answers


statuses = {p: rpc(p, "baton_nodeStatus")["result"] for p in (BASE, BASE + 1, BASE + 2)}
leader = next(p for p, s in statuses.items() if s["role"] == "leader")
account = rpc(leader, "eth_accounts")["result"][0]
term = statuses[leader]["term"]
for name, seconds, flooders in (("idle", 20, 0), ("8 endless eth_calls", 60, 8)):
    acks, intervals, answers = phase(leader, account, seconds, flooders)
    print(f"{name:>20}: ack p50 {statistics.median(acks):.1f} ms p99 {pct(acks, 99):.1f} ms ({len(acks)} transfers); "
          f"block interval p50 {statistics.median(intervals):.0f} ms p99 {pct(intervals, 99):.0f} ms max {max(intervals):.0f} ms"
          + (f"; calls answered: {dict((a, answers.count(a)) for a in set(answers))}" if answers else ""))
after = rpc(leader, "baton_nodeStatus")["result"]
print(f"term {term} -> {after['term']}, leader still node {after['leaderId']} (role here: {after['role']})")

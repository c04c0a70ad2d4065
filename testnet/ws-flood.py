# Benchmark (issue 13): 5,000 idle WebSocket connections from 50 source addresses
# on the leader of a running devnet, and 1,000 filters on a follower; then writes
# through the follower (forwarded to the leader over p2p) and rotation must go on.
#
#   scripts/devnet --rotation-blocks 5 &   # then:
#   python3 testnet/ws-flood.py
import asyncio
import json
import time
import urllib.request

BASE = 8545


def rpc(port, method, params=()):
    req = urllib.request.Request(f"http://127.0.0.1:{port}", data=json.dumps({"jsonrpc":"2.0","id":1,"method":method,"params":list(params)}).encode(), headers={"content-type":"application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())



async def hold(port, src, held, refused):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
        w.write((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        await w.drain()
        line = await asyncio.wait_for(r.readline(), 10)
        if b" 101 " in line:
            held.append(w)
        else:
            refused.append(line.decode().strip()); w.close()
    except Exception as e:
        refused.append(repr(e))



async def main():
    statuses = {p: rpc(p, "baton_nodeStatus")["result"] for p in (BASE, BASE+1, BASE+2)}
    leader = next(p for p, s in statuses.items() if s["role"] == "leader")
    follower = next(p for p in statuses if p != leader)
    term0 = statuses[leader]["term"]
    held, refused = [], []
    t = time.time()
    await asyncio.gather(*(hold(leader, f"127.0.1.{1 + i % 50}", held, refused) for i in range(5000)))
    print(f"leader :{leader}: {len(held)} idle WebSockets held, {len(refused)} refused ({sorted(set(x[:60] for x in refused))[:3]}) in {time.time()-t:.1f}s")
    filters = 0
    for _ in range(1000):
        out = rpc(follower, "eth_newFilter", [{"fromBlock": "latest"}])
        filters += "result" in out
    print(f"{filters} filters on the follower :{follower}")
    # The leader's own port is full: the follower forwards over p2p.
    accounts = rpc(follower, "eth_accounts")["result"]
    hashes = []
    t = time.time()
    for i in range(50):
        out = rpc(follower, "eth_sendTransaction", [{"from": accounts[i % 5], "to": "0x" + "77"*20, "value": "0x1"}])
        if "result" not in out: print("refused:", out); continue
        hashes.append(out["result"])
    print(f"{len(hashes)}/50 writes through the follower acknowledged in {time.time()-t:.1f}s")
    time.sleep(12)
    included = sum(1 for h in hashes if rpc(follower, "eth_getTransactionReceipt", [h])["result"])
    s = rpc(follower, "baton_nodeStatus")["result"]
    print(f"{included}/{len(hashes)} included; term {term0} -> {s['term']}, leader {statuses[leader]['id']} -> {s['leaderId']}, last change {s['lastLeaderChange']}")
    for w in held: w.close()



asyncio.run(main())

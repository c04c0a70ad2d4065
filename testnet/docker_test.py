#!/usr/bin/env python3
"""The Docker testnet end to end, run by docker-test.sh against a testnet that
up.sh started: a wallet client (web3.py, through wallet.py) sends transfers while
the leader is killed, restarted, partitioned away and healed, using the scripts a
user runs. Every check names the DESIGN.md invariant it holds the cluster to."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import wallet

TESTNET = Path(__file__).resolve().parent
ROOT = TESTNET.parent
NODES = (1, 2, 3)


def log(message: str) -> None:
    print(f"[docker-test {time.strftime('%H:%M:%S')}] {message}", flush=True)


def script(name: str, *args: str) -> str:
    """Runs testnet/NAME as a user would; fails the test if it fails."""
    done = subprocess.run([str(TESTNET / name), *args], capture_output=True, text=True)
    output = (done.stdout + done.stderr).strip()
    for line in output.splitlines():
        print(f"    {name}: {line}", flush=True)
    if done.returncode != 0:
        raise AssertionError(f"testnet/{name} {' '.join(args)} failed (exit {done.returncode})")
    return output


def url(node: int) -> str:
    return f"http://127.0.0.1:{8544 + node}"


def rpc(node: int, method: str, params=None, timeout: float = 3):
    """One JSON-RPC call to NODE's published port; raises if it errs."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(url(node), body.encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.load(response)
    if "error" in answer:
        raise RuntimeError(f"node{node} {method}: {answer['error']}")
    return answer["result"]


def view(node: int) -> dict | None:
    """NODE's own status, asked from inside its container (works while partitioned)."""
    done = subprocess.run(
        ["docker", "exec", f"baton-node{node}", "/usr/local/bin/baton", "status", "--this-node"],
        capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return dict(pair.split("=", 1) for pair in done.stdout.split())


def head(node: int) -> int | None:
    try:
        return int(rpc(node, "eth_blockNumber"), 16)
    except (OSError, RuntimeError):
        return None


def wait_until(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def leader_among(nodes) -> int | None:
    for node in nodes:
        try:
            if rpc(node, "conductor_leader") is True:
                return node
        except (OSError, RuntimeError):
            pass
    return None


def block_hashes(node: int, upto: int) -> list[str]:
    """Hashes of blocks 0..=upto on NODE, in batches of 100."""
    hashes = []
    for start in range(0, upto + 1, 100):
        batch = [{"jsonrpc": "2.0", "id": n, "method": "eth_getBlockByNumber",
                  "params": [hex(n), False]} for n in range(start, min(start + 100, upto + 1))]
        request = urllib.request.Request(url(node), json.dumps(batch).encode(),
                                         {"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            answers = sorted(json.load(response), key=lambda a: a["id"])
        hashes += [a["result"]["hash"] for a in answers]
    return hashes


def assert_identical_chains(nodes) -> int:
    """Invariant 4 (deterministic apply) and no fork: once every node reaches the
    same height, all report the same hash at every height. Returns that height."""
    target = max(head(n) or 0 for n in nodes)
    wait_until(f"nodes {nodes} to reach block {target}",
               lambda: all((head(n) or -1) >= target for n in nodes), 60)
    chains = {n: block_hashes(n, target) for n in nodes}
    for height in range(target + 1):
        seen = {chains[n][height] for n in nodes}
        assert len(seen) == 1, f"fork at height {height}: {seen}"
    log(f"nodes {list(nodes)} hold identical blocks 0..={target}")
    return target


def readme_wallet_settings() -> dict:
    """The MetaMask settings and dev key the README's Docker section tells users to
    enter, so the test sends ETH exactly as the README says."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Local testnet with Docker", 1)[1].split("\n## ", 1)[0]

    def row(name):
        match = re.search(rf"^\| {name} \| `?([^`|]+?)`? \|", section, re.MULTILINE)
        assert match, f"README's Docker section has no '{name}' row"
        return match.group(1).strip()

    return {
        "rpc": row("Default RPC URL"),
        "chain_id": int(row("Chain ID")),
        "symbol": row("Currency symbol"),
        "key": re.search(r"private key\s+`(0x[0-9a-f]{64})`", section).group(1),
        "to": re.search(r"to\s+`(0x[0-9a-fA-F]{40})`", section).group(1),
        "commands": re.findall(r"^python3 (testnet/wallet\.py .*)$", section, re.MULTILINE),
    }


def send_transfers(client, to: str, count: int, acked: set) -> None:
    for _ in range(count):
        tx_hash, receipt = wallet.send(client, to, 10**15)
        assert receipt["status"] == 1, f"transfer {tx_hash.to_0x_hex()} failed"
        acked.add(tx_hash.to_0x_hex())


def assert_each_included_once(acked: set, nodes) -> None:
    """Invariant 3 (acknowledged means committed): every hash the client was given is
    in exactly one block, and every node's receipt for it names the same block."""
    top = min(head(n) for n in nodes)
    seen: dict[str, int] = {}
    for number in range(top + 1):
        block = rpc(nodes[0], "eth_getBlockByNumber", [hex(number), False])
        for tx in block["transactions"]:
            seen[tx] = seen.get(tx, 0) + 1
    for tx in acked:
        assert seen.get(tx) == 1, f"acknowledged {tx} is in {seen.get(tx, 0)} blocks"
        blocks = {rpc(n, "eth_getTransactionReceipt", [tx])["blockHash"] for n in nodes}
        assert len(blocks) == 1, f"receipts for {tx} disagree across nodes: {blocks}"
    log(f"all {len(acked)} acknowledged transfers are included exactly once, receipts agree")


def health(node: int) -> str:
    done = subprocess.run(["docker", "inspect", "-f", "{{ .State.Health.Status }}",
                           f"baton-node{node}"], capture_output=True, text=True)
    return done.stdout.strip()


def get(address: str) -> tuple[int, str, str]:
    """GET `address`: (status, content type, body)."""
    with urllib.request.urlopen(address, timeout=5) as answer:
        return answer.status, answer.headers.get("content-type", ""), answer.read().decode()


def check_watching() -> None:
    """The status page and metrics on every node, and Prometheus scraping them all."""
    for n in NODES:
        status, kind, page = get(f"{url(n)}/status")
        assert status == 200 and kind.startswith("text/html") and "baton_subscribeClusterView" in page, \
            f"node{n} serves no status page"
        _, _, metrics = get(f"{url(n)}/metrics")
        assert "baton_raft_term" in metrics, f"node{n} serves no metrics"
    log("every node serves /status and /metrics")
    prometheus = subprocess.run(["docker", "inspect", "-f", "{{ .State.Running }}", "baton-prometheus"],
                                capture_output=True, text=True).stdout.strip()
    assert prometheus == "true", "the prometheus service is not running"

    def scraped():
        _, _, body = get("http://127.0.0.1:9090/api/v1/query?query=baton_raft_term")
        return len(json.loads(body)["data"]["result"]) == len(NODES)

    wait_until("Prometheus to scrape every node", scraped, 30)
    log("Prometheus (baton-prometheus:local, from Debian's package) scrapes all three nodes")


def check_ctl() -> None:
    """`baton ctl` with the testnet's admin token hands leadership on."""
    leader = wait_until("a leader", lambda: leader_among(NODES), 10)
    target = next(n for n in NODES if n != leader)
    done = subprocess.run(
        [os.environ["BATON_BIN"], "ctl", "--rpc", url(target), "--token-file",
         str(TESTNET / "config" / "admin.token"), "transfer-leader", "--to", str(target)],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"baton ctl transfer-leader failed: {done.stdout}{done.stderr}"
    wait_until(f"node{target} to lead", lambda: leader_among(NODES) == target, 10)
    log(f"baton ctl handed leadership from node{leader} to node{target} with the admin token")


def main() -> None:
    acked: set[str] = set()
    wait_until("every container's health check to pass",
               lambda: all(health(n) == "healthy" for n in NODES), 60)
    check_watching()
    check_ctl()
    settings = readme_wallet_settings()
    log(f"README wallet settings: {settings['rpc']}, chain id {settings['chain_id']}, "
        f"symbol {settings['symbol']}")
    client = wallet.connect(settings["rpc"], settings["key"])
    assert client.eth.chain_id == settings["chain_id"], "README's chain id is not the node's"
    assert settings["symbol"] == "ETH"
    before = client.eth.get_balance(wallet.Web3.to_checksum_address(settings["to"]))
    send_transfers(client, settings["to"], 5, acked)
    after = client.eth.get_balance(wallet.Web3.to_checksum_address(settings["to"]))
    assert after - before == 5 * 10**15, "the README's transfers did not all arrive"
    log("5 transfers sent with the README's key and settings arrived")
    assert settings["commands"], "README's Docker section shows no wallet.py command"
    for command in settings["commands"]:
        done = subprocess.run([sys.executable, *command.split()], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        log(f"README: python3 {command[:60]}… -> {done.stdout.strip() or done.stderr.strip()}")
        assert done.returncode == 0, f"the README's command failed: {done.stderr}"
    after_cli = client.eth.get_balance(wallet.Web3.to_checksum_address(settings["to"]))
    assert after_cli - after == 10**18, "the README's 1 ETH did not arrive"

    # Invariant 2: after the leader dies, a new one produces on top of all it holds.
    killed = script("kill-leader.sh")
    match = re.search(r"killed node(\d) .* block (\d+) after (\d+) ms; leader now node(\d)", killed)
    assert match, f"unexpected kill-leader.sh output: {killed}"
    victim, gap_ms, new_leader = int(match[1]), int(match[3]), int(match[4])
    assert new_leader != victim
    assert gap_ms <= 2000, f"the next block came {gap_ms} ms after the kill (issue: within 2 s)"
    status = script("status.sh")
    assert re.search(rf"^node{victim} .* exited", status, re.MULTILINE), "status.sh does not show the kill"
    survivors = [n for n in NODES if n != victim]
    follower = next(n for n in survivors if n != new_leader)
    survivor_client = wallet.connect(url(follower), settings["key"])
    send_transfers(survivor_client, settings["to"], 5, acked)
    log(f"5 more transfers through surviving follower node{follower} were included")

    script("restart.sh", f"node{victim}")
    assert_identical_chains(NODES)

    # Partition the leader: the majority elects and goes on (invariant 2); the cut-off
    # node shows nothing it could not commit (invariant 1).
    isolated = wait_until("a leader", lambda: leader_among(NODES), 10)
    majority = [n for n in NODES if n != isolated]
    script("partition.sh", f"node{isolated}")
    cut = int(view(isolated)["head"])
    new = wait_until("the majority to elect a leader", lambda: leader_among(majority), 10)
    log(f"node{isolated} cut off at head {cut}; node{new} leads the other two")
    majority_client = wallet.connect(url(majority[0]), settings["key"])
    send_transfers(majority_client, settings["to"], 3, acked)
    target = max(head(n) for n in majority) + 3
    isolated_heads = set()

    def majority_reached():
        isolated_heads.add(int(view(isolated)["head"]))
        return all((head(n) or 0) >= target for n in majority)

    wait_until(f"the majority to reach block {target}", majority_reached, 30)
    assert isolated_heads == {cut}, f"isolated node{isolated} published blocks {isolated_heads} after the cut at {cut}"
    isolated_hash = view(isolated)["hash"]
    assert isolated_hash == rpc(majority[0], "eth_getBlockByNumber", [hex(cut), False])["hash"]
    log(f"isolated node{isolated} stayed at block {cut} (same hash as the majority) "
        f"while the majority reached {target}")

    script("heal.sh", f"node{isolated}")
    wait_until(f"node{isolated} to catch up", lambda: int(view(isolated)["head"]) >= target, 60)
    assert_identical_chains(NODES)
    assert_each_included_once(acked, list(NODES))
    bench = script("failover-bench.sh", "2")
    assert "failover gap over 2 container kills: p50" in bench
    assert_identical_chains(NODES)
    log("passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        log(f"FAILED: {failure}")
        sys.exit(1)

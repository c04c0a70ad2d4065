#!/usr/bin/env python3
"""The status page in a real browser: headless Chromium loads a follower's
`/status`, the leader's process is SIGKILLed, and the page (still open, fed live
over the follower's WebSocket) must show another leader and the dead node as
unreachable. Drives Chromium through the DevTools protocol (websockets, from
PyPI) and saves a screenshot of the page after the failover.

    status_page.py --page http://127.0.0.1:18546/status \
        --nodes http://127.0.0.1:18545,... --screenshot /tmp/baton-status.png

Run against a devnet you own (testnet/rpc-suites.sh starts one): it kills a node.
"""

import argparse
import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

from clients import node_pid, node_status

PATIENCE = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("status page: no Chromium found (apt-get install chromium)")


class Page:
    """One browser tab, spoken to over the DevTools protocol."""

    def __init__(self, socket):
        self.socket = socket
        self.ids = itertools.count(1)

    async def call(self, method: str, **params):
        call_id = next(self.ids)
        await self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def js(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, what: str, expression: str, accept) -> str:
        deadline = time.monotonic() + PATIENCE
        value = None
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if accept(value):
                return value
            await asyncio.sleep(0.2)
        sys.exit(f"status page: {what} not shown within {PATIENCE:.0f} s (last: {value!r})")


def page_socket(port: int, url: str) -> str:
    """The DevTools WebSocket of the tab showing `url`."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as answer:
                for target in json.load(answer):
                    if target.get("type") == "page" and target.get("url", "").startswith(url):
                        return target["webSocketDebuggerUrl"]
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"status page: Chromium did not open {url}")


async def run(args) -> None:
    nodes = args.nodes.split(",")
    port = free_port()
    profile = tempfile.mkdtemp(prefix="baton-chromium-")
    browser = subprocess.Popen(
        [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
         "--window-size=1280,1400", args.page],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        async with websockets.connect(page_socket(port, args.page), max_size=None) as ws:
            page = Page(ws)
            shown = await page.wait_for(
                "a leader", "document.getElementById('leader').dataset.leader", bool)
            leader = next(url for url in nodes if node_status(url).get("role") == "leader")
            expected = str(node_status(leader)["id"])
            if shown != expected:
                sys.exit(f"status page: shows node {shown} leading, the cluster says node {expected}")
            print(f"ok  the follower's page shows node {shown} leading")

            os.kill(node_pid(leader), signal.SIGKILL)
            print(f"    SIGKILLed node {shown} ({leader})")
            new = await page.wait_for(
                "a new leader", "document.getElementById('leader').dataset.leader",
                lambda value: bool(value) and value != shown)
            await page.wait_for(
                "the dead node as unreachable",
                "document.getElementById('members').textContent", lambda text: "unreachable" in text)
            changes = await page.js("document.getElementById('changes').textContent")
            if f"node {new}" not in changes:
                sys.exit(f"status page: the change to node {new} is not in the timeline: {changes!r}")
            print(f"ok  the page, still open, shows node {new} leading and node {shown} unreachable")

            shot = await page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            with open(args.screenshot, "wb") as out:
                out.write(base64.b64decode(shot["data"]))
            print(f"ok  screenshot saved to {args.screenshot}")
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--page", required=True, help="a follower's status page URL")
    parser.add_argument("--nodes", required=True, help="every node's HTTP URL, comma-separated")
    parser.add_argument("--screenshot", required=True, help="where to save the PNG")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

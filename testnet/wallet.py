#!/usr/bin/env python3
"""Send ETH and read balances on a baton testnet with web3.py, filling each
transaction the way a wallet does (nonce from the pending count, gas from
eth_estimateGas, EIP-1559 fees from the node), signing locally and sending it raw.

    python3 -m pip install web3
    python3 testnet/wallet.py balance 0x70997970C51812dc3A010C7d01b50e0d17dc79C8
    python3 testnet/wallet.py --rpc http://127.0.0.1:8546 send \\
        --key 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 \\
        --to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --eth 1.5
"""

import argparse
import sys
from decimal import Decimal

from eth_account import Account
from web3 import Web3
from web3.middleware import SignAndSendRawMiddlewareBuilder


def connect(rpc: str, key: str | None = None) -> Web3:
    """A client for the node at `rpc`; with `key`, its account signs what it sends."""
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 10}))
    if key is not None:
        account = Account.from_key(key)
        w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
        w3.eth.default_account = account.address
    return w3


def send(w3: Web3, to: str, wei: int, wait: bool = True):
    """Sends `wei` from the client's account to `to`: (tx hash, receipt or None)."""
    tx_hash = w3.eth.send_transaction({"to": Web3.to_checksum_address(to), "value": wei})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30) if wait else None
    return tx_hash, receipt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpc", default="http://127.0.0.1:8545")
    commands = parser.add_subparsers(dest="command", required=True)
    balance = commands.add_parser("balance", help="an address's balance in ETH")
    balance.add_argument("address")
    transfer = commands.add_parser("send", help="send ETH and wait for the receipt")
    transfer.add_argument("--key", required=True, help="sender's private key (0x…)")
    transfer.add_argument("--to", required=True)
    transfer.add_argument("--eth", required=True, type=Decimal)
    args = parser.parse_args()

    if args.command == "balance":
        w3 = connect(args.rpc)
        wei = w3.eth.get_balance(Web3.to_checksum_address(args.address))
        print(f"{Web3.from_wei(wei, 'ether')} ETH")
        return 0
    w3 = connect(args.rpc, args.key)
    tx_hash, receipt = send(w3, args.to, Web3.to_wei(args.eth, "ether"))
    outcome = "succeeded" if receipt["status"] == 1 else "failed"
    print(f"{tx_hash.to_0x_hex()} {outcome} in block {receipt['blockNumber']} "
          f"(chain id {w3.eth.chain_id})")
    return 0 if receipt["status"] == 1 else 1


if __name__ == "__main__":
    sys.exit(main())

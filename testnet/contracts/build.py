"""Compiles the Vyper contracts here into <Name>.json ({"abi", "bytecode", "compiler"}),
so testnet/clients.py needs only web3. Run with the pinned compiler, from any dir:

    python3 -m venv /tmp/vyper-venv && /tmp/vyper-venv/bin/pip install vyper==0.4.3
    /tmp/vyper-venv/bin/python testnet/contracts/build.py

It runs `vyper --evm-version prague -f abi,bytecode <Name>.vy` for each source. Vyper
has no custom errors in its ABI, so a source declares each error it raises with
raw_revert in a comment, `# error Name(type arg, ...)`, and this script adds the
matching ABI entry, as a Solidity compiler would.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VYPER = Path(sys.executable).parent / "vyper"
ERROR_COMMENT = re.compile(r"#\s*error\s+(\w+)\((.*)\)")


def declared_errors(source: str) -> list[dict]:
    errors = {}
    for name, args in ERROR_COMMENT.findall(source):
        inputs = [
            {"name": arg_name, "type": arg_type}
            for arg_type, arg_name in (arg.split() for arg in args.split(","))
        ]
        errors[name] = {"type": "error", "name": name, "inputs": inputs}
    return list(errors.values())


def compile_contract(path: Path, version: str) -> dict:
    out = subprocess.run(
        [VYPER, "--evm-version", "prague", "-f", "abi,bytecode", path.name],
        cwd=HERE, check=True, capture_output=True, text=True,
    ).stdout.splitlines()
    abi = json.loads(out[0]) + declared_errors(path.read_text())
    return {"compiler": f"vyper {version} --evm-version prague", "abi": abi, "bytecode": out[1]}


def main() -> None:
    version = subprocess.run([VYPER, "--version"], check=True, capture_output=True, text=True).stdout.strip()
    for path in sorted(HERE.glob("*.vy")):
        target = path.with_suffix(".json")
        target.write_text(json.dumps(compile_contract(path, version), indent=1) + "\n")
        print(f"{path.name} -> {target.name}")


if __name__ == "__main__":
    main()

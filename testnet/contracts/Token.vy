# pragma version 0.4.3
"""
@title Token
@notice An ERC-20 token as dapps write them, for testnet/clients.py. A transfer
        beyond the balance or the allowance reverts with a Solidity-style custom
        error (selector + ABI-encoded arguments), which Vyper emits with raw_revert.
"""

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

name: public(String[32])
symbol: public(String[8])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])


@deploy
def __init__(supply: uint256):
    self.name = "Baton Test Token"
    self.symbol = "BTT"
    self.decimals = 18
    self.totalSupply = supply
    self.balanceOf[msg.sender] = supply
    log Transfer(sender=empty(address), receiver=msg.sender, value=supply)


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    available: uint256 = self.balanceOf[sender]
    if available < amount:
        # error InsufficientBalance(uint256 available, uint256 required)
        raw_revert(concat(method_id("InsufficientBalance(uint256,uint256)"), abi_encode(available, amount)))
    self.balanceOf[sender] = available - amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[sender][msg.sender]
    if allowed < amount:
        # error InsufficientAllowance(uint256 allowed, uint256 required)
        raw_revert(concat(method_id("InsufficientAllowance(uint256,uint256)"), abi_encode(allowed, amount)))
    self.allowance[sender][msg.sender] = allowed - amount
    self._transfer(sender, receiver, amount)
    return True

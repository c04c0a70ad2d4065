# pragma version 0.4.3
"""
@title Nft
@notice An ERC-721 style collectible as dapps write them, for testnet/clients.py:
        the deployer mints, owners transfer. Refusals revert with a reason string.
"""

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    tokenId: indexed(uint256)

minter: public(address)
balanceOf: public(HashMap[address, uint256])
owners: HashMap[uint256, address]


@deploy
def __init__():
    self.minter = msg.sender


@view
@external
def ownerOf(tokenId: uint256) -> address:
    owner: address = self.owners[tokenId]
    assert owner != empty(address), "no such token"
    return owner


@external
def mint(receiver: address, tokenId: uint256):
    assert msg.sender == self.minter, "only the minter mints"
    assert self.owners[tokenId] == empty(address), "already minted"
    self.owners[tokenId] = receiver
    self.balanceOf[receiver] += 1
    log Transfer(sender=empty(address), receiver=receiver, tokenId=tokenId)


@external
def transferFrom(sender: address, receiver: address, tokenId: uint256):
    assert self.owners[tokenId] == sender, "not the owner"
    assert msg.sender == sender, "not allowed"
    self.owners[tokenId] = receiver
    self.balanceOf[sender] -= 1
    self.balanceOf[receiver] += 1
    log Transfer(sender=sender, receiver=receiver, tokenId=tokenId)

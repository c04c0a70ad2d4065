# pragma version 0.4.3
# A counter that logs every increment and refuses zero with a reason: enough
# to exercise deployment, calls, logs, eth_call and revert reasons.
# Compiled with: vyper -f bytecode Counter.vy > Counter.bin

event Incremented:
    by: indexed(address)
    total: uint256

count: public(uint256)

@external
def increment(amount: uint256):
    assert amount > 0, "amount must be positive"
    self.count += amount
    log Incremented(by=msg.sender, total=self.count)

"""The mpc protocol: the shared model served under two-party MPC (CrypTen),
with every share crossing the party boundary.

Files: rules.py (the steps, what may cross), roles.py (the model creator
and the end user), compute.py (the compute parties and the dealer, with
their typed state), adversaries.py (leak_share), protocol.py (the
protocol, assembled), model.py (the forward pass under CrypTen),
communicator.py (CrypTen's messages as envelopes), dealer.py (Beaver
triples from a dealer party), randomness.py (AES-CTR keystreams for every
secret draw), compat.py (CrypTen on current torch, drawing from those
keystreams), tests/.
"""

from protocols.mpc.protocol import PROTOCOL

__all__ = ["PROTOCOL"]

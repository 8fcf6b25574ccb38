"""The mpc protocol: the shared model served under two-party MPC (CrypTen),
with every share crossing the party boundary.

Files: rules.py (what may cross), roles.py (each role's logic), model.py
(the forward pass under CrypTen), communicator.py (CrypTen's messages as
envelopes), dealer.py (Beaver triples from a dealer party), randomness.py (AES-CTR
keystreams for every secret draw), compat.py (CrypTen on current torch,
drawing from those keystreams), tests/.
"""

from protocols.mpc.roles import PROTOCOL

__all__ = ["PROTOCOL"]

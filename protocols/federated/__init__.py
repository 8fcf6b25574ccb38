"""The federated protocol: FedAvg rounds between data contributors and the
model creator as aggregator, in three modes: `plain`, `secagg` (Bonawitz et
al. secure aggregation, surviving dropouts) and `secagg+dp` (plus clipping
and distributed Gaussian noise, epsilon tracked per round). Then the
contributors attack the trained model for what it leaks of their data.

Files: rules.py (what may cross), roles.py (each role's logic), secagg.py,
dp.py, leakage.py (exposure and membership inference), data.py (the
deterministic corpus, patient notes and canaries), tests/.
"""

from protocols.federated.roles import PROTOCOL

__all__ = ["PROTOCOL"]

"""The federated protocol: FedAvg rounds between data contributors and the
model creator as aggregator, in three modes: `plain`, `secagg` (Bonawitz et
al. secure aggregation, surviving dropouts) and `secagg+dp` (plus clipping
and distributed discrete Gaussian noise, epsilon tracked per round). Then the
contributors attack the trained model for what it leaks of their data.

Files: rules.py (what may cross), messages.py (what crosses, parsed),
aggregator.py (the model creator), contributor.py and update.py (a data
contributor), adversaries.py (aggregators and contributors that misbehave),
protocol.py (the whole), secagg.py, dp.py (clipping, the discrete
Gaussian, accounting), leakage.py (exposure and membership inference),
tests/ (the patient notes and canaries: protocols/patients.py, shared with attestation).
"""

from protocols.federated.protocol import PROTOCOL

__all__ = ["PROTOCOL"]

"""Attestations: Merkle data attestations, model commitments, inference
receipts, as signed in-toto statements in DSSE envelopes, and a
transparency log.

The shared pieces (canonical JSON, Merkle trees, statements, receipts, the
weights' commitment) are the evidence layer, `evidence/`. Here: `dataset`
(a contributor's commitment, with membership and exclusion proofs), `model`
(the model statement), `ledger` (the transparency log), `rules` (steps,
labels, predicate types); the roles by side: `shared` (params, state,
submitting to the ledger), `contributor`, `creator`, `serving` (deployer
and end user), `ledger_server`, `serving_log` (the ledger's side of the
serving protocols' deployments and receipts), `placeholder` (stand-in weights);
`adversaries`; `verify` and `bom` (what `airlock verify` and `airlock bom`
check of a finished run); `protocol` (the protocol, assembled).
"""

from protocols.attestation.protocol import PROTOCOL

__all__ = ["PROTOCOL"]

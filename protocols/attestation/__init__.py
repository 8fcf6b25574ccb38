"""Attestations: Merkle data attestations, model commitments, inference
receipts, as signed in-toto statements in DSSE envelopes.

The pieces: `merkle` (RFC 6962 trees and proofs), `statements` (in-toto
Statement v1 in DSSE, Ed25519), `dataset` (a contributor's commitment, with
membership and exclusion proofs), `model` (a commitment to weights),
`receipts` (signed inference receipts), `ledger` (the transparency log).
The protocol between parties: `rules` and `roles`.
"""

from protocols.attestation.roles import PROTOCOL

__all__ = ["PROTOCOL"]

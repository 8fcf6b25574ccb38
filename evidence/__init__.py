"""The evidence layer: what parties hash, sign, prove and check, below the
runtime and the protocols, used by both and by the orchestrator's offline
checks. It imports nothing from `parties`, `protocols`, `orchestrator` or
`models`.

- `canonical`: the one encoding (RFC 8785) of JSON that is hashed or signed;
- `merkle`: RFC 6962 / RFC 9162 trees, inclusion and consistency proofs;
- `ordered`: the key-ordered Merkle tree with range commitments (exclusion proofs);
- `statements`: in-toto statements in DSSE envelopes, signed by a party's key;
- `receipts`: signed inference receipts;
- `weights`: the Merkle commitment to a model's weights;
- `claims`: claims about a run, and what a protocol's offline checks read;
- `errors`: the errors every layer shares (`AirlockError`, `ClaimFailed`).
"""

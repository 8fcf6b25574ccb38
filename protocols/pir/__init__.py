"""The pir protocol: private retrieval for RAG. The external database
answers without learning the query.

Files: rules.py (what may cross), roles.py (each role's logic), catalog.py
(the public catalog and the client's checks of it), adversaries.py
(malicious databases), corpus.py (the synthetic guideline documents),
embed.py (all-MiniLM-L6-v2, offline), index.py (k-means clusters, record
layout, plaintext reference retrieval), records.py (fixed-size tagged
records, their digests), xor.py (two-server XOR PIR), simplepir.py
(single-server LWE PIR), tests/.
"""

from protocols.pir.roles import PROTOCOL

__all__ = ["PROTOCOL"]

"""The pir protocol: private retrieval for RAG. The external database
answers without learning the query.

Files: rules.py (steps, what may cross), settings.py (the stage's params),
server.py (the external database), client.py (the end user's PIR
retrieval), rag.py (ranking, and the shipped model's answer from the whole
top guideline), protocol.py (the Protocol, assembled), catalog.py (the
public catalog, the client's checks of it, the stale-catalog signal),
adversaries.py (misbehaving clients and databases), embed.py
(all-MiniLM-L6-v2, offline), index.py (k-means
clusters, record layout, plaintext reference retrieval), records.py
(fixed-size tagged records, their digests), xor.py (two-server XOR PIR),
simplepir.py (single-server LWE PIR), tests/.
"""

from protocols.pir.protocol import PROTOCOL

__all__ = ["PROTOCOL"]

"""Private information retrieval for RAG (work in progress: the PIR schemes
are here; the database party, the embedder and the scenario come next).

- `records`: documents packed into fixed-size records;
- `xor`: two-server XOR PIR over two non-colluding replicas;
- `simplepir`: single-server LWE PIR in the style of SimplePIR.
"""

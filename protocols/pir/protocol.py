"""The pir protocol assembled from its sides (private retrieval for RAG).

server.py: the external database builds its index and answers catalog
    requests and batches of PIR queries.
client.py: the end user checks each database's catalog and fetches a
    question's whole cluster by PIR, padded to the largest cluster.
rag.py: the end user's retrieve action: it ranks what it fetched, keeps
    it in its store and (unless `answer = false`) answers each question
    with the shared model.
adversaries.py: the misbehaviours, as overrides of the honest code.

Schemes (the stage's `scheme`): `xor`, two replicas that must not collude;
`simplepir`, one server. Ranking (`ranking`): `cluster` fetches the nearest
cluster whole; `he` has both databases score every document under CKKS
(he.py), checks they agree, then fetches the top_k.
"""

from parties.protocol import Artifacts, Protocol
from protocols.artifacts import RETRIEVED
from protocols.pir import rag, server
from protocols.pir.adversaries import ADVERSARIES
from protocols.pir.client import ClientState
from protocols.pir.messages import MESSAGES
from protocols.pir.rules import BUILD_INDEX, DATABASE, NAME, RETRIEVE, RULES, USER, Step
from protocols.pir.settings import Settings

PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    messages=MESSAGES,
    handlers={
        (DATABASE, Step.CATALOG_REQUEST): server.on_catalog_request,
        (DATABASE, Step.PIR_QUERY): server.on_pir_query,
        (DATABASE, Step.EVALUATION_KEYS): server.on_evaluation_keys,
        (DATABASE, Step.RANK_REQUEST): server.on_rank_request,
    },
    actions={(DATABASE, BUILD_INDEX): server.build_index_action, (USER, RETRIEVE): rag.retrieve},
    stage=((DATABASE, BUILD_INDEX), (USER, RETRIEVE)),
    adversaries=ADVERSARIES,
    states={DATABASE: server.DatabaseState, USER: ClientState},
    holdings={DATABASE: server.DatabaseHoldings},
    params=Settings,
    # what the end user retrieved stays with it, for a stage that answers elsewhere
    artifacts=lambda params, part: Artifacts(makes=((USER, RETRIEVED),)),
)

"""Which mpc steps may cross between which roles, with which labels.

Everything a compute party (the deployer, rank 0, and an independent
`compute` party, rank 1) or the dealer receives is a share or public. The
prompt and the weights arrive as shares. The MPC traffic between the
compute parties carries masked openings of shares of both, and is labelled
as such. The dealer is asked for sizes only and answers with correlated
randomness. No rule lets a compute party send anything to the model creator,
the end user (except logit shares, as the answer) or the dealer (except
tuple requests, and the hash of them each other rank checks). With
`log_receipts`, the model creator logs in the ledger which compute parties
it shared the weights with (a digest names the model), and each compute
party logs a receipt per reply (digests only).
"""

import enum

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role
from protocols.attestation.serving_log import serving_log_rules

NAME = "mpc"


class Step(enum.StrEnum):
    WEIGHT_SHARES = "weight_shares"  # creator -> compute: a share of each weight
    PROMPT_SHARES = "prompt_shares"  # user -> compute: a share of the one-hot window
    LOGIT_SHARES = "logit_shares"  # compute -> user (reply): a share of the logits
    MPC_MESSAGE = "mpc_message"  # compute <-> compute: CrypTen's messages
    SEED_REQUEST = "seed_request"  # compute -> dealer: nothing but the asking, once
    SEED = "seed"  # dealer -> compute (reply): the rank's seed for its tuple shares
    TUPLE_REQUEST = "tuple_request"  # last compute rank -> dealer: sizes only
    TUPLE_SHARES = "tuple_shares"  # dealer -> last rank (reply): its corrections
    # other ranks -> dealer, after each forward pass: the hash of the tuple
    # requests they drew by, refused unless the last rank asked the same
    TUPLE_CHECK = "tuple_check"
    # the ledger's steps, named as in the attestation protocol: one log
    SUBMIT = "submit"  # creator, compute -> ledger: a deployment, a receipt
    LOGGED = "logged"  # ledger -> (reply): a signed head and proofs


USER, CREATOR, DEALER, LEDGER = Role.END_USER, Role.MODEL_CREATOR, Role.DEALER, Role.LEDGER
COMPUTE_ROLES = (Role.DEPLOYER, Role.COMPUTE)
MPC_LABELS = (label_rule("prompt:*", Form.SHARE), label_rule("weights:*", Form.SHARE))

RULES = (
    *(
        Rule(Step.WEIGHT_SHARES, CREATOR, role, (label_rule("weights:{sender}", Form.SHARE),))
        for role in COMPUTE_ROLES
    ),
    *(
        Rule(Step.PROMPT_SHARES, USER, role, (label_rule("prompt:{sender}", Form.SHARE),))
        for role in COMPUTE_ROLES
    ),
    *(
        Rule(
            Step.LOGIT_SHARES,
            role,
            USER,
            (label_rule("output:{receiver}", Form.SHARE),),
            reply_to=(Step.PROMPT_SHARES,),
        )
        for role in COMPUTE_ROLES
    ),
    *(
        Rule(Step.MPC_MESSAGE, a, b, MPC_LABELS)
        for a in COMPUTE_ROLES
        for b in COMPUTE_ROLES  # two compute servers, or a deployer and one
    ),
    *(
        Rule(asking, role, DEALER, (label_rule("randomness:{receiver}", Form.PUBLIC),))
        for asking in (Step.SEED_REQUEST, Step.TUPLE_REQUEST, Step.TUPLE_CHECK)
        for role in COMPUTE_ROLES
    ),
    *(
        Rule(
            answer,
            DEALER,
            role,
            (label_rule("randomness:{sender}", Form.SHARE),),
            reply_to=(asking,),
        )
        for asking, answer in (
            (Step.SEED_REQUEST, Step.SEED),
            (Step.TUPLE_REQUEST, Step.TUPLE_SHARES),
        )
        for role in COMPUTE_ROLES
    ),
    *serving_log_rules(COMPUTE_ROLES),
)

"""Which mpc steps may cross between which roles, with which labels.

Everything a compute party (the deployer, rank 0, and an independent
`compute` party, rank 1) or the dealer receives is a share or public. The
prompt and the weights arrive as shares. The MPC traffic between the
compute parties carries masked openings of shares of both, and is labelled
as such. The dealer is asked for sizes only and answers with correlated
randomness. No rule lets a compute party send anything to the model creator,
the end user (except logit shares, as the answer) or the dealer (except
tuple requests).
"""

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role

NAME = "mpc"

USER, CREATOR, DEALER = Role.END_USER, Role.MODEL_CREATOR, Role.DEALER
COMPUTE_ROLES = (Role.DEPLOYER, Role.COMPUTE)
MPC_LABELS = (label_rule("prompt:*", Form.SHARE), label_rule("weights:*", Form.SHARE))

RULES = (
    *(
        Rule("weight_shares", CREATOR, role, (label_rule("weights:{sender}", Form.SHARE),))
        for role in COMPUTE_ROLES
    ),
    *(
        Rule("prompt_shares", USER, role, (label_rule("prompt:{sender}", Form.SHARE),))
        for role in COMPUTE_ROLES
    ),
    *(
        Rule(
            "logit_shares",
            role,
            USER,
            (label_rule("output:{receiver}", Form.SHARE),),
            reply_to=("prompt_shares",),
        )
        for role in COMPUTE_ROLES
    ),
    *(
        Rule("mpc_message", a, b, MPC_LABELS)
        for a in COMPUTE_ROLES
        for b in COMPUTE_ROLES
        if a != b
    ),
    *(
        Rule("tuple_request", role, DEALER, (label_rule("randomness:{receiver}", Form.PUBLIC),))
        for role in COMPUTE_ROLES
    ),
    *(
        Rule(
            "tuple_shares",
            DEALER,
            role,
            (label_rule("randomness:{sender}", Form.SHARE),),
            reply_to=("tuple_request",),
        )
        for role in COMPUTE_ROLES
    ),
)

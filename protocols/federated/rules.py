"""Which federated steps may cross between which roles, with which labels.

The model creator is the aggregator. Every request goes from it to a data
contributor and every contributor message is the reply to one, so a
contributor never speaks unasked. What a contributor sends carries its own
name in the asset ("update:{sender}"); what the aggregator relays between
contributors (keys, encrypted shares) is public or ciphertext.

A plaintext update may reach the aggregator only as `plain_update`, and only
where the scenario's guarantees let the model creator see `update:*` in
plaintext; `masked_update` admits the masked form alone, so an unmasked
update sent in its place is refused by this rule.
"""

from parties.labels import Form
from parties.protocol import LabelRule, Rule, label_rule
from parties.roles import Role

NAME = "federated"

AGGREGATOR, CONTRIBUTOR = Role.MODEL_CREATOR, Role.DATA_CONTRIBUTOR
CONTROL = label_rule("federated:{sender}", Form.PUBLIC)


def _down(step: str, *labels: LabelRule) -> Rule:
    return Rule(step, AGGREGATOR, CONTRIBUTOR, (CONTROL, *labels))


def _up(step: str, answers: str, *labels: LabelRule) -> Rule:
    return Rule(step, CONTRIBUTOR, AGGREGATOR, tuple(labels), reply_to=(answers,))


RULES = (
    # the global model and the round's settings; answered with signed round keys
    _down("round_start", label_rule("weights:{sender}", Form.PLAINTEXT)),
    _up("round_keys", "round_start", label_rule("keys:{sender}", Form.PUBLIC)),
    # the keys of every participant; answered with shares encrypted to each peer
    _down("key_directory", label_rule("keys:*", Form.PUBLIC)),
    _up("encrypted_shares", "key_directory", label_rule("mask_seeds:{sender}", Form.CIPHERTEXT)),
    # the shares addressed to the contributor; answered with its update
    _down("update_request", label_rule("mask_seeds:*", Form.CIPHERTEXT)),
    _up("masked_update", "update_request", label_rule("update:{sender}", Form.MASKED)),
    _up("plain_update", "update_request", label_rule("update:{sender}", Form.PLAINTEXT)),
    # the survivor set, answered with the contributor's signature over it
    # (Bonawitz et al.'s consistency check); then the survivors and those
    # signatures, answered with the shares that remove the masks
    _down("consistency_request"),
    _up("consistency_signature", "consistency_request", CONTROL),
    _down("unmask_request"),
    _up("unmask_shares", "unmask_request", label_rule("mask_seeds:*", Form.SHARE)),
    # why an update was left out of the round
    _down("update_rejected"),
    # the trained model, to the contributors who helped train it
    _down("final_model", label_rule("weights:{sender}", Form.PLAINTEXT)),
)

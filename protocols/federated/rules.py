"""Which federated steps may cross between which roles, with which labels.

The model creator is the aggregator. Every request goes from it to a data
contributor and every contributor message is the reply to one, so a
contributor never speaks unasked. What a contributor sends carries its own
name in the asset ("update:{sender}"), but for its countersignature of the
final model, which names the aggregator's weights by digest
("weights:{receiver}"); what the aggregator relays between contributors
(keys, encrypted shares) is public or ciphertext.

A plaintext update may reach the aggregator only as `plain_update`, and only
where the scenario's guarantees let the model creator see `update:*` in
plaintext; `masked_update` admits the masked form alone, so an unmasked
update sent in its place is refused by this rule.
"""

import enum

from parties.labels import Form
from parties.protocol import LabelRule, Rule, label_rule
from parties.roles import Role

NAME = "federated"


class Step(enum.StrEnum):
    """The federated steps, as they cross the wire."""

    ROUND_START = "round_start"
    ROUND_KEYS = "round_keys"
    KEY_DIRECTORY = "key_directory"
    ENCRYPTED_SHARES = "encrypted_shares"
    UPDATE_REQUEST = "update_request"
    MASKED_UPDATE = "masked_update"
    PLAIN_UPDATE = "plain_update"
    CONSISTENCY_REQUEST = "consistency_request"
    CONSISTENCY_SIGNATURE = "consistency_signature"
    UNMASK_REQUEST = "unmask_request"
    UNMASK_SHARES = "unmask_shares"
    UPDATE_REJECTED = "update_rejected"
    FINAL_MODEL = "final_model"
    MODEL_COUNTERSIGNATURE = "model_countersignature"


AGGREGATOR, CONTRIBUTOR = Role.MODEL_CREATOR, Role.DATA_CONTRIBUTOR
CONTROL = label_rule("federated:{sender}", Form.PUBLIC)


def _down(step: Step, *labels: LabelRule) -> Rule:
    return Rule(step, AGGREGATOR, CONTRIBUTOR, (CONTROL, *labels))


def _up(step: Step, answers: Step, *labels: LabelRule) -> Rule:
    return Rule(step, CONTRIBUTOR, AGGREGATOR, tuple(labels), reply_to=(answers,))


RULES = (
    # the global model and the round's settings; answered with signed round keys
    _down(Step.ROUND_START, label_rule("weights:{sender}", Form.PLAINTEXT)),
    _up(Step.ROUND_KEYS, Step.ROUND_START, label_rule("keys:{sender}", Form.PUBLIC)),
    # the keys of every participant; answered with shares encrypted to each peer
    _down(Step.KEY_DIRECTORY, label_rule("keys:*", Form.PUBLIC)),
    _up(
        Step.ENCRYPTED_SHARES,
        Step.KEY_DIRECTORY,
        label_rule("mask_seeds:{sender}", Form.CIPHERTEXT),
    ),
    # the shares addressed to the contributor; answered with its update
    _down(Step.UPDATE_REQUEST, label_rule("mask_seeds:*", Form.CIPHERTEXT)),
    _up(Step.MASKED_UPDATE, Step.UPDATE_REQUEST, label_rule("update:{sender}", Form.MASKED)),
    _up(Step.PLAIN_UPDATE, Step.UPDATE_REQUEST, label_rule("update:{sender}", Form.PLAINTEXT)),
    # the survivor set, answered with the contributor's signature over it
    # (Bonawitz et al.'s consistency check); then the survivors and those
    # signatures, answered with the shares that remove the masks
    _down(Step.CONSISTENCY_REQUEST),
    _up(Step.CONSISTENCY_SIGNATURE, Step.CONSISTENCY_REQUEST, CONTROL),
    _down(Step.UNMASK_REQUEST),
    _up(Step.UNMASK_SHARES, Step.UNMASK_REQUEST, label_rule("mask_seeds:*", Form.SHARE)),
    # why an update was left out of the round
    _down(Step.UPDATE_REJECTED),
    # the trained model, to the contributors who helped train it; answered
    # with each one's signed statement of the model's root and the rounds it
    # joined (evidence/countersignatures.py)
    _down(Step.FINAL_MODEL, label_rule("weights:{sender}", Form.PLAINTEXT)),
    _up(
        Step.MODEL_COUNTERSIGNATURE,
        Step.FINAL_MODEL,
        label_rule("weights:{receiver}", Form.DIGEST),
    ),
)

"""The walkthrough protocol, assembled."""

from parties.protocol import Protocol
from parties.roles import Role
from protocols.walkthrough import roles
from protocols.walkthrough.adversaries import ADVERSARIES
from protocols.walkthrough.messages import MESSAGES
from protocols.walkthrough.rules import NAME, RULES, Step

PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    messages=MESSAGES,
    handlers={
        (Role.MODEL_CREATOR, Step.DATASET_COMMITMENT): roles.on_dataset_commitment,
        (Role.DEPLOYER, Step.MODEL_CARD): roles.on_model_card,
        (Role.DEPLOYER, Step.SEALED_PROMPT): roles.on_sealed_prompt,
        (Role.EXTERNAL_DATABASE, Step.CATALOG_REQUEST): roles.on_catalog_request,
    },
    actions={
        (Role.DATA_CONTRIBUTOR, "commit_dataset"): roles.commit_dataset,
        (Role.MODEL_CREATOR, "publish_model_card"): roles.publish_model_card,
        (Role.END_USER, "fetch_catalog"): roles.fetch_catalog,
        (Role.END_USER, "send_prompt"): roles.send_prompt,
    },
    stage=(
        (Role.DATA_CONTRIBUTOR, "commit_dataset"),
        (Role.MODEL_CREATOR, "publish_model_card"),
        (Role.END_USER, "fetch_catalog"),
        (Role.END_USER, "send_prompt"),
    ),
    adversaries=ADVERSARIES,
    states={Role.MODEL_CREATOR: roles.CreatorState, Role.DEPLOYER: roles.DeployerState},
)

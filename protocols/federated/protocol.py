"""The federated protocol as the runtime sees it: the rules (rules.py), the
aggregator's actions (aggregator.py), the contributor's handlers and actions
(contributor.py, update.py), each role's typed state and holdings, and the
adversaries it knows (adversaries.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parties.protocol import Artifacts, Protocol
from protocols.artifacts import (
    ACCEPTED_DATASETS,
    COUNTERSIGNATURES,
    TRAINED_MODEL,
    TRAINING_RUN,
)
from protocols.federated.adversaries import ADVERSARIES
from protocols.federated.aggregator import (
    AggregatorState,
    aggregate,
    check_consistency,
    collect_updates,
    load_model,
    publish_model,
    share_keys,
    start_round,
)
from protocols.federated.contributor import (
    ContributorHoldings,
    ContributorState,
    evaluate_leakage,
    on_consistency_request,
    on_final_model,
    on_key_directory,
    on_round_start,
    on_unmask_request,
    on_update_rejected,
    prepare_data,
)
from protocols.federated.messages import MESSAGES, Settings, settings
from protocols.federated.report import report
from protocols.federated.rules import AGGREGATOR, CONTRIBUTOR, NAME, RULES, Step
from protocols.federated.update import on_update_request


def artifacts(params: Mapping[str, Any], part: str | None) -> Artifacts:
    """The trained model, its training run and its countersignatures stay
    with the creator, each contributor's own countersignature with it; only
    attested contributors need the datasets the creator accepted."""
    attested = settings(params).contributors == "attested"
    return Artifacts(
        needs=((AGGREGATOR, ACCEPTED_DATASETS),) if attested else (),
        makes=(
            (AGGREGATOR, TRAINED_MODEL),
            (AGGREGATOR, TRAINING_RUN),
            (AGGREGATOR, COUNTERSIGNATURES),
            (CONTRIBUTOR, COUNTERSIGNATURES),
        ),
    )


PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    messages=MESSAGES,
    handlers={
        (CONTRIBUTOR, Step.ROUND_START): on_round_start,
        (CONTRIBUTOR, Step.KEY_DIRECTORY): on_key_directory,
        (CONTRIBUTOR, Step.UPDATE_REQUEST): on_update_request,
        (CONTRIBUTOR, Step.CONSISTENCY_REQUEST): on_consistency_request,
        (CONTRIBUTOR, Step.UNMASK_REQUEST): on_unmask_request,
        (CONTRIBUTOR, Step.UPDATE_REJECTED): on_update_rejected,
        (CONTRIBUTOR, Step.FINAL_MODEL): on_final_model,
    },
    actions={
        (CONTRIBUTOR, "prepare_data"): prepare_data,
        (AGGREGATOR, "load_model"): load_model,
        (AGGREGATOR, "start_round"): start_round,
        (AGGREGATOR, "share_keys"): share_keys,
        (AGGREGATOR, "collect_updates"): collect_updates,
        (AGGREGATOR, "check_consistency"): check_consistency,
        (AGGREGATOR, "aggregate"): aggregate,
        (AGGREGATOR, "publish_model"): publish_model,
        (CONTRIBUTOR, "evaluate_leakage"): evaluate_leakage,
    },
    stage=((CONTRIBUTOR, "prepare_data"), (AGGREGATOR, "load_model")),
    round_stage=(
        (AGGREGATOR, "start_round"),
        (AGGREGATOR, "share_keys"),
        (AGGREGATOR, "collect_updates"),
        (AGGREGATOR, "check_consistency"),
        (AGGREGATOR, "aggregate"),
    ),
    final_stage=((AGGREGATOR, "publish_model"), (CONTRIBUTOR, "evaluate_leakage")),
    states={AGGREGATOR: AggregatorState, CONTRIBUTOR: ContributorState},
    holdings={CONTRIBUTOR: ContributorHoldings},
    survives_loss_of=frozenset({CONTRIBUTOR}),
    params=Settings,
    artifacts=artifacts,
    report=report,
    adversaries=ADVERSARIES,
)

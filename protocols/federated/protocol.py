"""The federated protocol as the runtime sees it: rules, the handlers and
actions of each role (roles.py), the adversaries it knows (adversaries.py)."""

from __future__ import annotations

from parties.protocol import Adversary, Protocol
from protocols.federated import adversaries
from protocols.federated.report import report
from protocols.federated.roles import (
    FAULTY_UPDATES,
    Settings,
    aggregate,
    check_consistency,
    collect_updates,
    evaluate_leakage,
    on_consistency_request,
    on_final_model,
    on_key_directory,
    on_round_start,
    on_unmask_request,
    on_update_rejected,
    on_update_request,
    prepare_data,
    pretrain,
    publish_model,
    share_keys,
    start_round,
)
from protocols.federated.rules import AGGREGATOR, CONTRIBUTOR, NAME, RULES

PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    handlers={
        (CONTRIBUTOR, "round_start"): on_round_start,
        (CONTRIBUTOR, "key_directory"): on_key_directory,
        (CONTRIBUTOR, "update_request"): on_update_request,
        (CONTRIBUTOR, "consistency_request"): on_consistency_request,
        (CONTRIBUTOR, "unmask_request"): on_unmask_request,
        (CONTRIBUTOR, "update_rejected"): on_update_rejected,
        (CONTRIBUTOR, "final_model"): on_final_model,
    },
    actions={
        (CONTRIBUTOR, "prepare_data"): prepare_data,
        (AGGREGATOR, "pretrain"): pretrain,
        (AGGREGATOR, "start_round"): start_round,
        (AGGREGATOR, "share_keys"): share_keys,
        (AGGREGATOR, "collect_updates"): collect_updates,
        (AGGREGATOR, "check_consistency"): check_consistency,
        (AGGREGATOR, "aggregate"): aggregate,
        (AGGREGATOR, "publish_model"): publish_model,
        (CONTRIBUTOR, "evaluate_leakage"): evaluate_leakage,
        **{(AGGREGATOR, action): play for action, play in adversaries.ACTIONS.items()},
    },
    stage=((CONTRIBUTOR, "prepare_data"), (AGGREGATOR, "pretrain")),
    round_stage=(
        (AGGREGATOR, "start_round"),
        (AGGREGATOR, "share_keys"),
        (AGGREGATOR, "collect_updates"),
        (AGGREGATOR, "check_consistency"),
        (AGGREGATOR, "aggregate"),
    ),
    final_stage=((AGGREGATOR, "publish_model"), (CONTRIBUTOR, "evaluate_leakage")),
    survives_loss_of=frozenset({CONTRIBUTOR}),
    params=Settings,
    report=report,
    adversaries={
        **{
            name: Adversary(CONTRIBUTOR)
            for name in ("unmasked_update", "mislabeled_update", *FAULTY_UPDATES)
        },
        **{
            name: Adversary(AGGREGATOR, after_stage=action)
            for name, action in adversaries.PLAYED_BY.items()
        },
    },
)

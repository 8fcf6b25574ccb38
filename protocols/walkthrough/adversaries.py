"""The misbehaviours the walkthrough protocol knows, apart from the honest roles.

Played by the end user, each an action run after the stage:
  plaintext_prompt   a misconfigured client sends its first prompt in the
                     clear through its own boundary, which withholds it;
  leaked_prompt      a compromised client sends it past its own boundary:
                     the deployer refuses it, but the bytes reached it;
  mislabeled_prompt  the prompt in the clear, labelled ciphertext, past its
                     own boundary: admitted, caught by the audit's content scan.
Played by the deployer, an action run after the stage:
  forward_prompt     passes a received prompt on to the external database.
Played by the external database, replacing its catalogue handler:
  tainted_catalog    answers with a record of a contributor's training data.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any

from parties.envelope import Envelope
from parties.labels import Form, Label
from parties.protocol import Action, Adversary, PartyContext, Reply, attempt, holdings_as, state_of
from parties.roles import EndUser, Role
from protocols.walkthrough.roles import DeployerPhase, DeployerState, Summary, catalog_titles
from protocols.walkthrough.rules import Step


class Name(enum.StrEnum):
    PLAINTEXT_PROMPT = "plaintext_prompt"
    LEAKED_PROMPT = "leaked_prompt"
    MISLABELED_PROMPT = "mislabeled_prompt"
    FORWARD_PROMPT = "forward_prompt"
    TAINTED_CATALOG = "tainted_catalog"


def prompt_in_clear(form: Form, *, bypass_own_boundary: bool) -> Action:
    """The first prompt, unsealed, labelled `form`, to the first deployer."""

    def send(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
        deployer = ctx.peers(Role.DEPLOYER)[0]
        prompt = holdings_as(ctx, EndUser).prompts[0].encode()
        label = [Label(f"prompt:{ctx.name}", form)]
        return attempt(
            ctx,
            deployer,
            Step.SEALED_PROMPT,
            label,
            prompt,
            bypass_own_boundary=bypass_own_boundary,
        )

    return send


def forward_prompt(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    state = state_of(ctx, DeployerState)
    state.expect(DeployerPhase.SERVING, doing="forwarding a prompt")
    owner, sealed = state.prompts[0]
    database = ctx.peers(Role.EXTERNAL_DATABASE)[0]
    return attempt(
        ctx, database, Step.SEALED_PROMPT, [Label(f"prompt:{owner}", Form.CIPHERTEXT)], sealed
    )


def tainted_catalog(ctx: PartyContext, envelope: Envelope) -> Reply:
    """The caller's boundary refuses this reply, but the bytes reached it:
    the audit counts them as seen."""
    record = "Jane Roe, type 2 diabetes, MRN 48-1193 AIRLOCK-CANARY-TRAIN-hospital_1-3b9d"
    payload = json.dumps({"titles": catalog_titles(ctx), "record": record}).encode()
    return Reply(Step.CATALOG, (Label("train:hospital_1", Form.PLAINTEXT),), payload)


# each played once, as an action run after the stage's plan
AFTER_STAGE: tuple[tuple[Name, Role, Action], ...] = (
    (
        Name.PLAINTEXT_PROMPT,
        Role.END_USER,
        prompt_in_clear(Form.PLAINTEXT, bypass_own_boundary=False),
    ),
    (Name.LEAKED_PROMPT, Role.END_USER, prompt_in_clear(Form.PLAINTEXT, bypass_own_boundary=True)),
    (
        Name.MISLABELED_PROMPT,
        Role.END_USER,
        prompt_in_clear(Form.CIPHERTEXT, bypass_own_boundary=True),
    ),
    (Name.FORWARD_PROMPT, Role.DEPLOYER, forward_prompt),
)
ADVERSARIES: dict[str, Adversary] = {
    **{
        name: Adversary(role, actions={name: action}, after_stage=name)
        for name, role, action in AFTER_STAGE
    },
    Name.TAINTED_CATALOG: Adversary(
        Role.EXTERNAL_DATABASE, handlers={Step.CATALOG_REQUEST: tainted_catalog}
    ),
}

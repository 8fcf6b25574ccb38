"""Every step of every protocol refuses its fixed negative examples.

The tables are written by hand from what each protocol means (see
tests/payload_examples.py), one per protocol beside its code
(protocols/<protocol>/tests/negative_examples.py; the toy protocols' in
tests/toy/negative_examples.py). Each payload is checked with its step's
message definition through `Message.check`, the function the receiving
boundary applies before any role reads a payload: a refused one must raise
BadPayload, a valid one must pass. Unlike the protocol fuzzing, whose wrong
payloads come from the definition under test, these fail when a definition
is loosened (a 64-byte hex signature made any string, a bound dropped).
No party runs: this is fast, and in `make test`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import pytest

from parties.message import BadPayload, Message
from parties.protocol import Protocol
from protocols import get_protocol, protocol_names
from tests.payload_examples import Examples
from tests.toy import announce, tally
from tests.toy import negative_examples as toy


@dataclass(frozen=True)
class Table:
    protocol: Protocol
    examples: dict[str, Examples] | None  # None: the protocol has no table yet
    where: str  # the file that holds it, or should

    def message(self, step: str) -> Message:
        return self.protocol.messages[step]


def _registered(name: str) -> Table:
    module = f"protocols.{name}.tests.negative_examples"
    where = module.replace(".", "/") + ".py"
    try:
        found: ModuleType | None = importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        found = None
    return Table(get_protocol(name), found.EXAMPLES if found else None, where)


TOY = "tests/toy/negative_examples.py"
TABLES: dict[str, Table] = {
    **{name: _registered(name) for name in protocol_names()},
    "tally": Table(tally.PROTOCOL, toy.TALLY, TOY),
    "announce": Table(announce.PROTOCOL, toy.ANNOUNCE, TOY),
}


@dataclass(frozen=True)
class Case:
    protocol: str
    step: str
    why: str
    payload: bytes

    def __str__(self) -> str:
        return f"{self.protocol}.{self.step}: {self.why}"


def _cases(kind: str) -> list[Case]:
    return [
        Case(protocol, step, why, payload)
        for protocol, table in TABLES.items()
        for step, examples in sorted((table.examples or {}).items())
        for why, payload in getattr(examples, kind).items()
    ]


@pytest.mark.parametrize("case", _cases("refused"), ids=str)
def test_each_step_refuses_what_its_protocol_refuses(case: Case) -> None:
    table = TABLES[case.protocol]
    try:
        table.message(case.step).check(case.payload)
    except BadPayload:
        return
    pytest.fail(
        f"{case} was admitted: the definition of {case.protocol}.{case.step} (its protocol's "
        f"messages.py) is looser than the protocol ({table.where})"
    )


@pytest.mark.parametrize("case", _cases("valid"), ids=str)
def test_each_step_admits_what_an_honest_party_sends(case: Case) -> None:
    try:
        TABLES[case.protocol].message(case.step).check(case.payload)
    except BadPayload as error:
        pytest.fail(f"{case} was refused: {error}")


@pytest.mark.parametrize("case", _cases("left_to_role"), ids=str)
def test_what_is_left_to_the_role_is_still_left_to_it(case: Case) -> None:
    """Payloads the protocol refuses in the role's code, which the definition
    admits: once a definition refuses one, the table should say so."""
    table = TABLES[case.protocol]
    try:
        table.message(case.step).check(case.payload)
    except BadPayload:
        pytest.fail(
            f"{case} is now refused by its definition: move it from left_to_role to refused "
            f"in {table.where}"
        )


def test_every_step_of_every_protocol_has_negative_examples() -> None:
    """A new protocol or step fails here until its table names payloads its
    receiver must refuse, and one an honest party sends."""
    problems = []
    for name, table in TABLES.items():
        steps = {str(step) for step in table.protocol.steps}
        if table.examples is None:
            problems.append(
                f"{name} has no table of negative examples: write {table.where} with EXAMPLES, "
                "keyed by step (see tests/payload_examples.py)"
            )
            continue
        for step in sorted(steps):
            examples = table.examples.get(step)
            if examples is None or not examples.refused:
                problems.append(
                    f"{name}.{step} has no negative example: add EXAMPLES[{step!r}] with "
                    f"payloads its receiver must refuse to {table.where}"
                )
            elif not examples.valid:
                problems.append(
                    f"{name}.{step} has no valid example: add one an honest party sends to "
                    f"EXAMPLES[{step!r}] in {table.where}"
                )
        for step in sorted(set(table.examples) - steps):
            problems.append(f"{table.where} has examples of {name}.{step}, which is no step")
    assert not problems, "\n".join(problems)

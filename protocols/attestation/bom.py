"""An AI bill of materials (CycloneDX 1.6) for a run's model, from the
statements its ledger logged: the model as a machine-learning-model
component, each training dataset as a data component it depends on, each
carrying the digests of its signed attestation.

cyclonedx-python-lib (11.12) does not model CycloneDX's `modelCard` (it has
no class for it), so the card is added to the model component of the JSON
the library writes, and the whole document is then validated against the
library's bundled CycloneDX 1.6 schema, which does define `modelCard`. The
training protocol's parameters, which the card has no fields for, are
`airlock:` properties of the model component.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from evidence.claims import RunEvidence
from parties.errors import AirlockError
from parties.roles import Role
from protocols.attestation.ledger import entry_bytes
from protocols.attestation.rules import DATASET_PREDICATE, MODEL_PREDICATE
from protocols.attestation.verify import logged_statements

NO_LEDGER = "the run has no ledger, so no logged model to describe"


def _text(value: Any) -> str:
    """A property's value as a reader expects it: a list comma-separated,
    a whole number without the ".0" the statement's JSON gave it."""
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _properties(values: dict[str, Any]) -> list[Property]:
    return [Property(name=f"airlock:{key}", value=_text(value)) for key, value in values.items()]


def build_bom(run: RunEvidence) -> str:
    """The run's AI BOM as CycloneDX 1.6 JSON. Only statements whose
    signatures verify are used."""
    ledgers = run.parties(Role.LEDGER)
    if not ledgers:
        raise AirlockError(NO_LEDGER)
    logged = [item for ledger in ledgers for item in logged_statements(run, ledger)[1]]
    models = [(i.envelope, i.opened) for i in logged if i.opened.predicate_type == MODEL_PREDICATE]
    if not models:
        raise AirlockError("no model commitment was logged in this run")
    statement, model = models[-1]
    datasets = {
        i.opened.subject: (i.envelope, i.opened)
        for i in logged
        if i.opened.predicate_type == DATASET_PREDICATE
    }
    predicate = model.predicate
    model_component = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=str(predicate.get("model", model.subject)),
        bom_ref=model.subject,
        description="The committed model; its weights are named by an RFC 6962 Merkle root.",
        properties=_properties(
            {
                "weights-merkle-root-sha256": model.sha256,
                "parameter-count": int(predicate.get("parameter_count", 0)),
                "attestation-sha256": hashlib.sha256(entry_bytes(statement)).hexdigest(),
                **{f"training.{k}": v for k, v in dict(predicate.get("training", {})).items()},
            }
        ),
    )
    bom = Bom()
    bom.metadata.component = model_component
    dependencies = []
    for reference in predicate.get("datasets", []):
        name = str(reference.get("name"))
        data_statement, opened = datasets.get(name, (None, None))
        values: dict[str, Any] = {"merkle-root-sha256": reference.get("sha256")}
        if opened is not None and data_statement is not None:
            values.update(
                {
                    "record-count": int(opened.predicate.get("record_count", 0)),
                    "sort-key": opened.predicate.get("sort_key"),
                    "attestation-sha256": hashlib.sha256(entry_bytes(data_statement)).hexdigest(),
                }
            )
        else:
            values["attestation"] = "not logged"
        component = Component(
            type=ComponentType.DATA, name=name, bom_ref=name, properties=_properties(values)
        )
        bom.components.add(component)
        dependencies.append(component)
    bom.register_dependency(model_component, dependencies)
    outputter = make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6)
    document = json.loads(outputter.output_as_string())
    document["metadata"]["component"]["modelCard"] = _model_card(
        predicate, [component.name for component in dependencies]
    )
    text = json.dumps(document, indent=2)
    invalid = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if invalid is not None:  # a defect here, not in the run: say which rule failed
        raise AirlockError(f"the AI BOM is not valid CycloneDX 1.6: {invalid}")
    return text


def _model_card(predicate: dict[str, Any], datasets: list[str]) -> dict[str, Any]:
    """The CycloneDX 1.6 model card of the committed model: what it is, the
    datasets it was trained on (references to their data components), and
    how it was trained, as the model statement says."""
    training = dict(predicate.get("training", {}))
    limitations = []
    if "epsilon" in training:
        limitations.append(
            f"Trained with ({_text(training['epsilon'])}, {_text(training.get('delta'))})"
            "-differential privacy: what it learned of any one training record is bounded."
        )
    return {
        "modelParameters": {
            "approach": {"type": "self-supervised"},
            "task": "text-generation",
            "architectureFamily": "transformer",
            "modelArchitecture": "decoder-only transformer with ReLU attention "
            f"({_text(predicate.get('parameter_count', 0))} parameters)",
            "datasets": [{"ref": name} for name in datasets],
            "inputs": [{"format": "text"}],
            "outputs": [{"format": "text"}],
        },
        "considerations": {"technicalLimitations": limitations} if limitations else {},
    }

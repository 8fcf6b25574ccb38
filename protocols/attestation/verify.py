"""What `airlock verify` checks of an attestation run, from its logs alone:
every verifiable claim its parties exchanged (statements, signatures, ledger
heads and proofs, exclusion proofs, model commitments, inference receipts).

Numbered as the checks run (the orchestrator checks the logs first):

1. log integrity (as the audit): the material below is what parties logged;
2. statements: each one the ledger logged (answered), in this protocol's
   stages or the tee protocol's, verifies with its sender's key (an
   enclave's receipt: with the receipt key the creator's logged deployment
   statement names for it);
3. ledger order: the ledger gave each index to one statement only (a ledger
   showing parties different histories, a split view, gives one index twice);
   ledger history: rebuilding the ledger's tree from the statements it
   received, in order, gives every signed head any party was shown; each
   inclusion and consistency proof a party was given verifies;
4. datasets: each dataset attestation shown to the model creator is signed,
   logged, and its exclusion proofs hold;
5. model commitment: each model statement names only logged dataset statements;
   the model files its creator published (RUN/model/, RUN/model.sig,
   RUN/model_creator.pub.pem) verify with OpenSSF Model Signing under the
   key the statement names, and are the model it names; a federated-trained
   model's SLSA provenance is logged, for the published weights file,
   started from the shipped checkpoint (by digest), resolving to the logged
   dataset attestations the model statement names, and carrying the
   countersignatures the model statement carries; and the committed root is
   the one at least the threshold of the surviving contributors
   countersigned (each countersignature logged by its contributor, in this
   run, of this creator's model), which the model statement carries;
6. receipts: each receipt an end user received, or the ledger logged, is
   signed with a receipt key the model commitment endorses for its server
   (or, an enclave's, that a logged deployment of the committed model
   names), names the committed model, and (for those users received in
   clear) answers a request the deployer received, with that request's
   salted prompt digest and the output the user was given.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.claims import Claim, Finding, RunEvidence
from evidence.countersignatures import (
    COUNTERSIGNATURE_PREDICATE,
    Countersignature,
    open_countersignature,
)
from evidence.merkle import MerkleTree, verify_consistency, verify_inclusion
from evidence.receipts import (
    DEPLOYMENT_PREDICATE,
    RECEIPT_PREDICATE,
    open_deployment,
    open_receipt,
    salted_sha256,
)
from evidence.statements import OpenedStatement, json_or_none, open_statement
from parties.errors import AirlockError, ClaimFailed
from parties.log import Direction, Outcome
from parties.roles import Role
from protocols.attestation.creator import CreatorHoldings, check_dataset_attestation
from protocols.attestation.ledger import check_answer, entry_bytes
from protocols.attestation.model import ModelCommitment
from protocols.attestation.provenance import CLAIM as PROVENANCE_CLAIM
from protocols.attestation.provenance import (
    carried_countersignatures,
    check_provenance,
    leaf_sha256,
    shipped_base_sha256,
)
from protocols.attestation.rules import (
    DATASET_PREDICATE,
    MODEL_PREDICATE,
    NAME,
    SIGNED_BY_SENDER,
    SLSA_PROVENANCE,
    Step,
)
from protocols.attestation.signed_model import verify_signed_model

RECEIPTS_CLAIM = "inference receipts come from endorsed servers and name the committed model"
COUNTERSIGNED_CLAIM = "the committed model is the one its surviving contributors countersigned"


def verify_claims(run: RunEvidence) -> list[Claim]:
    """Claims 2 to 6, for each ledger of the run."""
    claims = []
    for ledger in run.parties(Role.LEDGER):
        statements, logged = logged_statements(run, ledger)
        claims.append(statements)
        ordered, order_claim = _ledger_order(run, ledger, logged)
        claims.append(order_claim)
        tree = MerkleTree.from_data(entry_bytes(statement) for statement in ordered)
        claims.append(_history(run, ledger, tree))
        datasets_claim, accepted = _datasets(run, ledger)
        claims.append(datasets_claim)
        commitment, model_claim = _model(run, logged, accepted)
        claims.append(model_claim)
        claims.append(_signed_model(run, logged))
        claims.extend(_provenance(run, logged))
        claims.extend(_countersigned(run, logged))
        claims.append(_receipts(run, ledger, logged, commitment))
    return claims


@dataclass(frozen=True)
class LoggedStatement:
    """A statement the ledger logged, opened with its signer's key: its
    sender's, or (an enclave's receipt) the key a logged deployment names."""

    sender: str
    protocol: str  # whose stage logged it
    envelope: dict[str, Any]
    opened: OpenedStatement
    key: ed25519.Ed25519PublicKey


Logged = list[LoggedStatement]


def _digest(statement: dict[str, Any]) -> str:
    return hashlib.sha256(entry_bytes(statement)).hexdigest()


def logged_statements(run: RunEvidence, ledger: str) -> tuple[Claim, Logged]:
    """2. Every statement the ledger logged (in any protocol's stage),
    opened with its signer's key. A submission the ledger admitted but
    refused (its handler failed, so it never answered) is not logged."""
    claim = Claim(f"statements logged by {ledger} are signed by their senders")
    answered = {
        (entry.get("peer"), entry.get("session"))
        for entry in run.entries(ledger)
        if (entry.get("direction"), entry.get("outcome"), entry.get("step"))
        == (Direction.OUT, Outcome.REPLIED, Step.LOGGED)
    }
    logged = []
    receipt_keys: dict[str, ed25519.Ed25519PublicKey] = {}  # by server, as deployments name
    for entry, payload in run.received(ledger, Step.SUBMIT, any_protocol=True):
        sender = entry["peer"]
        if (sender, entry.get("session")) not in answered:
            continue
        claim.checked += 1
        request = json_or_none(payload)
        role, claimed = Role(run.role_of(sender)), f"statement from {sender}"
        try:
            if not isinstance(request, dict) or "statement" not in request:
                raise ClaimFailed("statement", "malformed submission")
            statement = request["statement"]
            if entry.get("protocol") != NAME and role == Role.MODEL_CREATOR:
                deployment = open_deployment(statement, sender, run.key(sender))
                receipt_keys[deployment.server] = deployment.receipt_key
            key: ed25519.Ed25519PublicKey | None
            if entry.get("protocol") == NAME:
                key, predicate = run.key(sender), SIGNED_BY_SENDER[role]
            elif role == Role.MODEL_CREATOR:
                key, predicate = run.key(sender), DEPLOYMENT_PREDICATE
            else:  # a serving protocol's server: receipts, under the key deployed to it
                key, predicate = receipt_keys.get(sender), RECEIPT_PREDICATE
            if key is None:
                raise ClaimFailed(claimed, "no logged deployment names its receipt key")
            opened = open_statement(statement, key, predicate, claimed)
        except ClaimFailed as error:
            claim.fail(ledger, entry["index"], str(error))
            continue
        logged.append(LoggedStatement(sender, str(entry.get("protocol")), statement, opened, key))
    return claim, logged


def _ledger_order(
    run: RunEvidence, ledger: str, logged: Logged
) -> tuple[list[dict[str, Any]], Claim]:
    """The ledger's order of entries, from the index each answer gave to the
    statement its session names (the ledger's own log is in arrival order,
    which concurrent submissions can make differ from append order)."""
    claim = Claim(f"{ledger} gave each log index to one statement")
    by_digest = {_digest(item.envelope): item.envelope for item in logged}
    positions: dict[int, str] = {}
    for party in run.parties():
        for entry, payload in run.received(party, Step.LOGGED, any_protocol=True):
            answer = json_or_none(payload)
            if not isinstance(answer, dict) or not isinstance(answer.get("index"), int):
                continue
            claim.checked += 1
            index, digest = answer["index"], str(entry.get("session"))
            if positions.setdefault(index, digest) != digest:
                claim.fail(party, entry["index"], f"{ledger} gave index {index} to two statements")
    ordered = []
    for index in range(len(positions)):
        digest = positions.get(index, "")
        if digest not in by_digest:
            claim.fail(ledger, None, f"entry {index} answers no statement {ledger} received")
            break
        ordered.append(by_digest[digest])
    return ordered, claim


def _history(run: RunEvidence, ledger: str, tree: MerkleTree) -> Claim:
    """3. Every head shown to a party is the tree of what the ledger received."""
    claim = Claim(f"{ledger}'s signed heads and proofs match what it received")
    for party in run.parties():
        for entry, payload in run.received(party, Step.LOGGED, any_protocol=True):
            claim.checked += 1
            answer = json_or_none(payload)
            try:
                head = check_answer(answer, run.key(ledger), None, None, "ledger head")
                if head.size > len(tree) or tree.root(head.size) != head.root:
                    raise ClaimFailed(
                        "ledger history",
                        f"head of size {head.size} is not the tree of the statements {ledger} "
                        "received (history rewritten)",
                    )
                if answer.get("index") is not None:
                    index = int(answer["index"])
                    proof = [bytes.fromhex(p) for p in answer["inclusion"]]
                    verify_inclusion(
                        tree.leaf(index), index, head.size, proof, head.root, "inclusion"
                    )
                # from the size the asker last saw (whoever it was asked for)
                since = int(answer.get("since", 0))
                if 0 < since <= head.size and answer.get("consistency"):
                    proof = [bytes.fromhex(p) for p in answer["consistency"]]
                    verify_consistency(
                        since,
                        head.size,
                        tree.root(since),
                        head.root,
                        proof,
                        f"consistency from size {since}",
                    )
            except ClaimFailed as error:
                claim.fail(party, entry["index"], str(error))
            except (KeyError, TypeError, ValueError, IndexError):
                claim.fail(party, entry["index"], "malformed ledger answer")
    return claim


def _datasets(run: RunEvidence, ledger: str) -> tuple[Claim, set[tuple[str, str]]]:
    """4. Dataset attestations shown to model creators, with their required
    exclusions; returns the (dataset, root) pairs that hold."""
    claim = Claim("dataset attestations and exclusion proofs")
    accepted = set()
    for creator in run.parties(Role.MODEL_CREATOR):
        holdings = run.holdings(creator)
        required = holdings.requires_exclusion if isinstance(holdings, CreatorHoldings) else ()
        for entry, payload in run.received(creator, Step.DATASET_ATTESTATION):
            claim.checked += 1
            contributor = entry["peer"]
            try:
                commitment = check_dataset_attestation(
                    json_or_none(payload),
                    contributor,
                    run.key(contributor),
                    run.key(ledger),
                    required,
                )
            except ClaimFailed as error:
                claim.fail(creator, entry["index"], str(error))
                continue
            accepted.add((commitment.dataset, commitment.root.hex()))
    return claim, accepted


def _model(
    run: RunEvidence, logged: Logged, accepted: set[tuple[str, str]]
) -> tuple[ModelCommitment | None, Claim]:
    """5. The model statement binds only logged datasets whose attestations hold."""
    claim = Claim("model commitment binds logged, verified datasets")
    logged_datasets = {
        (item.opened.subject, item.opened.sha256)
        for item in logged
        if item.opened.predicate_type == DATASET_PREDICATE
    }
    commitment = None
    for opened in (item.opened for item in logged):
        if opened.predicate_type != MODEL_PREDICATE:
            continue
        claim.checked += 1
        try:
            commitment = ModelCommitment.from_statement(opened, "model commitment")
        except ClaimFailed as error:
            claim.fail(None, None, str(error))
            continue
        for reference in commitment.datasets:
            if (reference.name, reference.sha256) not in logged_datasets & accepted:
                claim.fail(
                    None,
                    None,
                    f"{commitment.model} names {reference.name} "
                    f"{reference.sha256[:16]}..., not a logged dataset whose attestation holds",
                )
    if claim.checked == 0:
        _unreached(run, claim, "no model statement was logged")
    return commitment, claim


def _signed_model(run: RunEvidence, logged: Logged) -> Claim:
    """5b. The published model files verify with OpenSSF Model Signing under
    the key each logged model statement names, and are the model it names."""
    claim = Claim("published model files are signed as the model statement says")
    for opened in (item.opened for item in logged):
        named = (
            opened.predicate.get("signed_model")
            if opened.predicate_type == MODEL_PREDICATE
            else None
        )
        if not isinstance(named, dict):
            continue
        claim.checked += 1
        try:
            verify_signed_model(run.directory, named)
        except AirlockError as error:
            claim.fail(None, None, str(error))
    if claim.checked == 0:
        _unreached(run, claim, "no logged model statement names signed model files")
    return claim


def _provenance(run: RunEvidence, logged: Logged) -> list[Claim]:
    """5c. A federated-trained model's SLSA provenance is logged by its
    creator, for the published weights file, resolving to the logged dataset
    attestations its model statement names. No claim where nothing was trained."""
    claim = Claim("training provenance (SLSA v1) names the published weights and logged datasets")
    leaves = {
        hashlib.sha256(entry_bytes(item.envelope)).hexdigest(): item.opened.subject
        for item in logged
        if item.opened.predicate_type == DATASET_PREDICATE
    }
    statements = {item.sender: item.opened.predicate for item in _trained(logged)}
    trained = {
        sender: {str(d.get("name")) for d in predicate.get("datasets", [])}
        for sender, predicate in statements.items()
    }
    base = shipped_base_sha256()
    for item in logged:
        if item.opened.predicate_type != SLSA_PROVENANCE:
            continue
        claim.checked += 1
        opened = item.opened
        try:
            resolved = check_provenance(
                opened.subject,
                opened.sha256,
                opened.predicate,
                item.sender,
                run.directory,
                leaves,
                base,
            )
            if set(resolved) != trained.get(item.sender, set()):
                raise ClaimFailed(
                    PROVENANCE_CLAIM, "its datasets are not those the model statement names"
                )
            named = statements.get(item.sender, {}).get("countersignatures")
            in_statement = {leaf_sha256(e) for e in named} if isinstance(named, list) else set()
            if set(carried_countersignatures(opened.predicate).values()) != in_statement:
                raise ClaimFailed(
                    PROVENANCE_CLAIM,
                    "its countersignatures are not those the model statement carries",
                )
        except ClaimFailed as error:
            claim.fail(item.sender, None, str(error))
    if not claim.checked and not trained:
        return []
    if not claim.checked:
        _unreached(run, claim, "a model trained in the run has no logged provenance")
    return [claim]


def _trained(logged: Logged) -> Logged:
    """The logged model statements of models trained in the run (federated)."""
    return [
        item
        for item in logged
        if item.opened.predicate_type == MODEL_PREDICATE
        and isinstance(item.opened.predicate.get("training"), dict)
        and item.opened.predicate["training"].get("protocol") == "federated"
    ]


def _countersigned(run: RunEvidence, logged: Logged) -> list[Claim]:
    """5d. A federated-trained model is the one its contributors were sent:
    at least the threshold of the surviving contributors the model statement
    names logged a countersignature of its root (in this run, of this
    creator's model, after joining its last round, starting from the
    shipped checkpoint), none of them one of another root, and the model
    statement carries at least the threshold of them. No claim where
    nothing was trained."""
    trained = _trained(logged)
    if not trained:
        return []
    claim = Claim(COUNTERSIGNED_CLAIM)
    settings = run.settings("federated") or {}
    threshold = max(1, int(settings.get("threshold", 1)))
    contributors = set(run.parties(Role.DATA_CONTRIBUTOR))
    base = shipped_base_sha256()
    countersigned: dict[str, Countersignature] = {}  # by the SHA-256 of its ledger leaf
    for item in logged:
        if item.opened.predicate_type != COUNTERSIGNATURE_PREDICATE:
            continue
        try:
            signed = open_countersignature(item.envelope, item.sender, item.key)
        except ClaimFailed as error:
            claim.fail(item.sender, None, str(error))
            continue
        if signed.run_id != run.run_id:
            claim.fail(item.sender, None, f"its countersignature is of run {signed.run_id!r}")
            continue
        if any(r.number == 1 and r.model_sha256 != base for r in signed.rounds):
            claim.fail(
                item.sender,
                None,
                "it was sent a first-round model other than the shipped checkpoint",
            )
        countersigned[leaf_sha256(item.envelope)] = signed
    for item in trained:
        claim.checked += 1
        _check_countersigned(claim, item, countersigned, contributors, threshold)
    return [claim]


def _check_countersigned(
    claim: Claim,
    item: LoggedStatement,
    countersigned: dict[str, Countersignature],
    contributors: set[str],
    threshold: int,
) -> None:
    """One trained model's statement against the logged countersignatures."""
    creator, root, predicate = item.sender, item.opened.sha256, item.opened.predicate
    training = predicate["training"]
    survivors, rounds = training.get("survivors"), training.get("rounds")
    if (
        not isinstance(survivors, list)
        or not set(map(str, survivors)) <= contributors
        or not isinstance(rounds, int | float)
    ):
        claim.fail(creator, None, "its model statement names no survivors among the contributors")
        return
    survivors = sorted(map(str, survivors))
    theirs = [c for c in countersigned.values() if c.trainer == creator]
    on_root = sorted(
        {c.contributor for c in theirs if c.root == root and c.contributor in survivors}
    )
    for other in theirs:
        if other.root != root and other.contributor in survivors:
            claim.fail(
                other.contributor,
                None,
                f"a survivor, it countersigned {other.root[:16]}..., not the committed "
                f"{root[:16]}...: the final model it was sent is not the committed one",
            )
        elif other.root == root and other.last_round != int(rounds):
            claim.fail(
                other.contributor,
                None,
                f"it countersigned round {other.last_round} as its last, the model statement "
                f"says {int(rounds)} rounds",
            )
    if len(on_root) < threshold:
        claim.fail(
            creator,
            None,
            f"the committed root {root[:16]}... is countersigned by {len(on_root)} of the "
            f"surviving contributors ({', '.join(survivors)}): "
            f"{', '.join(on_root) or 'none'}; {threshold} needed: it is not the model they were "
            "sent",
        )
    named = {str(d.get("name")) for d in predicate.get("datasets", []) if isinstance(d, dict)}
    for name in on_root:
        if f"train:{name}" not in named:
            claim.fail(creator, None, f"its model statement names no dataset of {name}")
    carried = predicate.get("countersignatures")
    carried_by = set()
    for envelope in carried if isinstance(carried, list) else []:
        signed = countersigned.get(leaf_sha256(envelope))
        if signed is None or signed.trainer != creator or signed.root != root:
            claim.fail(
                creator,
                None,
                "its model statement carries a countersignature no "
                "contributor logged of the committed root",
            )
            continue
        carried_by.add(signed.contributor)
    if len(carried_by & set(survivors)) < threshold:
        claim.fail(
            creator,
            None,
            f"its model statement carries countersignatures of {len(carried_by & set(survivors))} "
            f"surviving contributors, {threshold} needed",
        )


def _unreached(run: RunEvidence, claim: Claim, missing: str) -> None:
    """What a claim lacks fails it in a completed run; in a failed one the
    run may have ended before it (a note: what was logged still verifies)."""
    if run.completed:
        claim.fail(None, None, missing)
    else:
        claim.notes.append(Finding(None, None, f"not reached: {missing} before the run failed"))


def _receipts(
    run: RunEvidence, ledger: str, logged: Logged, commitment: ModelCommitment | None
) -> Claim:
    """6. Receipts come from endorsed servers, answer real requests and name
    the committed model."""
    claim = Claim(RECEIPTS_CLAIM)
    if commitment is None:
        _unreached(run, claim, "no committed model to check receipts against")
        return claim
    requests: dict[str, str] = {}  # nonce -> salted prompt digest, as the deployers received them
    for deployer in run.parties(Role.DEPLOYER):
        for _, payload in run.received(deployer, Step.INFERENCE_REQUEST):
            request = json_or_none(payload)
            if isinstance(request, dict):
                requests[str(request.get("nonce"))] = str(request.get("input_sha256"))
    for user in run.parties(Role.END_USER):
        for entry, payload in run.received(user, Step.INFERENCE_RESPONSE):
            claim.checked += 1
            deployer, answer = entry["peer"], json_or_none(payload)
            try:
                if not isinstance(answer, dict):
                    raise ClaimFailed("inference receipt", "malformed answer")
                receipt = open_receipt(
                    answer.get("receipt"), commitment.receipt_key(deployer, "inference receipt")
                )
                if receipt.nonce not in requests:
                    raise ClaimFailed(
                        "inference receipt", f"answers no request {deployer} received"
                    )
                output_salt = bytes.fromhex(str(answer.get("output_salt")))
                receipt.check(
                    model_root=commitment.root,
                    input_sha256=requests[receipt.nonce],
                    output_sha256=salted_sha256(output_salt, str(answer.get("output")).encode()),
                    nonce=bytes.fromhex(receipt.nonce),
                )
            except ClaimFailed as error:
                claim.fail(user, entry["index"], str(error))
            except ValueError:
                claim.fail(user, entry["index"], "inference receipt: malformed answer")
    deployed = {  # the roots each logged deployment released to its server
        (item.opened.predicate["server"], item.opened.sha256)
        for item in logged
        if item.opened.predicate_type == DEPLOYMENT_PREDICATE
    }
    for item in logged:
        if item.opened.predicate_type == RECEIPT_PREDICATE:
            claim.checked += 1
            claimed = "receipt logged by " + item.sender
            try:
                if item.protocol != NAME:
                    # opened under the key a deployment of the committed root names
                    if (item.sender, commitment.root.hex()) not in deployed:
                        raise ClaimFailed(claimed, "no deployment of the committed model names it")
                    key = item.key
                else:
                    key = commitment.receipt_key(item.sender, claimed)
                receipt = open_receipt(item.envelope, key)
                if receipt.model_sha256 != commitment.root.hex():
                    raise ClaimFailed(claimed, "names a model other than the committed one")
            except ClaimFailed as error:
                claim.fail(ledger, None, str(error))
    return claim

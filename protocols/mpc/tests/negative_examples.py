"""Fixed payloads of each mpc step that the protocol says its receiver
must refuse, and honest ones (tests/payload_examples.py explains why they
are written by hand; tests/test_negative_examples.py checks them). What
each message is: communicator.py (CrypTen's messages), dealer.py (tuple
requests: sizes only, no empty dimension, 1 to MAX_BULK alike), roles.py
and compute.py (shares, seeds, receipts)."""

from typing import Any

import numpy as np

from protocols.attestation.tests.negative_examples import (
    LEDGER_ANSWER,
    LEDGER_ANSWER_REFUSED,
    LEDGER_EXAMPLES,
    STATEMENT,
    STATEMENT_REFUSED,
)
from protocols.mpc.dealer import MAX_BULK, MAX_REQUEST_ELEMENTS
from tests.payload_examples import (
    Examples,
    arrays,
    as_json,
    changed,
    framed,
    hexed,
    npy,
    without,
)

H16, H32 = hexed(16), hexed(32)
SHARE = np.zeros((4, 8), dtype=np.int64)  # fixed-point shares, as CrypTen holds them

# the model's configuration, each field as str(int) writes it, and its weights root
CONFIG = {
    "vocab": "512",
    "context": "96",
    "width": "128",
    "layers": "4",
    "heads": "4",
    "hidden": "384",
    "model_sha256": H32,
}
WEIGHTS = arrays(**{"token_embedding.weight": SHARE})
PROMPT = arrays(prompt=SHARE)
LOGITS = arrays(logits=SHARE)
RECEIPTS = {"nonce": H16, "input_sha256": H32, "since": 3}  # what the receipts must name
LOGGED = {"receipt": STATEMENT, "ledger": LEDGER_ANSWER}
UNLOGGED = {"receipt": STATEMENT, "unlogged": "the ledger did not answer"}
TWO = arrays(**{"0": SHARE, "1": SHARE})


def _config(**fields: Any) -> bytes:
    return framed(changed(CONFIG, **fields), WEIGHTS)


# a Beaver triple for a (1, 128) x (128, 128) product, 8 alike, the first asked
MATMUL = {
    "kind": "additive",
    "op": "matmul",
    "kwargs": {},
    "size0": [1, 128],
    "size1": [128, 128],
    "id": 1,
    "count": 8,
}
BINARY = {"kind": "binary", "size0": [1, 128], "size1": [1, 128], "id": 2, "count": 8}
B2A = {"kind": "B2A", "size0": [1, 128], "size1": [], "id": 3, "count": 8}
CHECK = {"through": 12, "transcript": H32}


def _matmul(**fields: Any) -> bytes:
    return as_json(changed(MATMUL, **fields))


EXAMPLES: dict[str, Examples] = {
    "weight_shares": Examples(
        valid={"the configuration, the root and a share of each weight": framed(CONFIG, WEIGHTS)},
        refused={
            "a dimension as a number, not its decimal string": _config(vocab=512),
            "a dimension of 0": _config(width="0"),
            "a negative dimension": _config(layers="-4"),
            "a dimension with a leading zero": _config(heads="04"),
            "a dimension in exponent notation": _config(hidden="3.84e2"),
            "a dimension of ten digits": _config(context="1000000000"),
            "no number of heads": framed(without(CONFIG, "heads"), WEIGHTS),
            "no weights root": framed(without(CONFIG, "model_sha256"), WEIGHTS),
            "a weights root one byte short": _config(model_sha256=hexed(31)),
            "a weights root that is not hex": _config(model_sha256="r" * 64),
            "a configuration field the model has not": _config(dropout="0"),
            "no shares": framed(CONFIG),
            "shares that are not a safetensors file": framed(CONFIG, npy(SHARE)),
        },
    ),
    "prompt_shares": Examples(
        valid={
            "a share of the one-hot window": framed({}, PROMPT),
            "with what the receipts must name": framed(RECEIPTS, PROMPT),
        },
        refused={
            "a nonce of 8 bytes": framed(changed(RECEIPTS, nonce=hexed(8)), PROMPT),
            "a nonce of 32 bytes": framed(changed(RECEIPTS, nonce=H32), PROMPT),
            "a commitment that is not a SHA-256": framed(
                changed(RECEIPTS, input_sha256=H16), PROMPT
            ),
            "a nonce without the commitment": framed(without(RECEIPTS, "input_sha256"), PROMPT),
            "no last head size": framed(without(RECEIPTS, "since"), PROMPT),
            "a negative last head size": framed(changed(RECEIPTS, since=-1), PROMPT),
            "the last head size as a string": framed(changed(RECEIPTS, since="3"), PROMPT),
            "the prompt in the header": framed({"prompt": "What is asthma?"}, PROMPT),
            "the prompt's salt, which never leaves the user": framed(
                changed(RECEIPTS, salt=H32), PROMPT
            ),
            "no share": framed({}),
            "a share that is not a safetensors file": framed({}, npy(SHARE)),
        },
    ),
    "logit_shares": Examples(
        valid={
            "a share of the logits": framed({}, LOGITS),
            "with the receipt and the ledger's answer": framed(LOGGED, LOGITS),
            "with the receipt and why it is not logged": framed(UNLOGGED, LOGITS),
        },
        refused={
            **{
                f"a receipt with {why}": framed(changed(LOGGED, receipt=bad), LOGITS)
                for why, bad in STATEMENT_REFUSED.items()
            },
            **{
                f"a ledger answer with {why}": framed(changed(LOGGED, ledger=bad), LOGITS)
                for why, bad in LEDGER_ANSWER_REFUSED.items()
            },
            "a receipt with neither a ledger answer nor why": framed(
                {"receipt": STATEMENT}, LOGITS
            ),
            "a ledger answer without its receipt": framed({"ledger": LEDGER_ANSWER}, LOGITS),
            "both a ledger answer and why it is not logged": framed(
                {**LOGGED, "unlogged": "no"}, LOGITS
            ),
            "an empty reason for not logging": framed(changed(UNLOGGED, unlogged=""), LOGITS),
            "the output in the header": framed({"output": "Asthma is"}, LOGITS),
            "no share": framed({}),
            "a share that is not a safetensors file": framed({}, SHARE.tobytes()),
        },
    ),
    "mpc_message": Examples(
        valid={
            "one tensor sent": framed({"kind": "send", "count": 1}, arrays(**{"0": SHARE})),
            "a batched all-reduce": framed({"kind": "all_reduce", "count": 2}, TWO),
        },
        refused={
            "a kind CrypTen's communicator does not send": framed(
                {"kind": "pickle", "count": 1}, TWO
            ),
            "a point-to-point send of two tensors": framed({"kind": "send", "count": 2}, TWO),
            "a gather of no tensor": framed({"kind": "gather", "count": 0}, TWO),
            "a reduction of no tensor": framed({"kind": "all_reduce", "count": 0}, TWO),
            "a negative count": framed({"kind": "broadcast", "count": -1}, TWO),
            "the count as a string": framed({"kind": "reduce", "count": "2"}, TWO),
            "no kind": framed({"count": 1}, TWO),
            "no count": framed({"kind": "scatter"}, TWO),
            "a field the message does not have": framed(
                {"kind": "send", "count": 1, "rank": 0}, TWO
            ),
            "no tensors": framed({"kind": "send", "count": 1}),
            "tensors that are not a safetensors file": framed(
                {"kind": "send", "count": 1}, npy(SHARE)
            ),
        },
    ),
    "seed_request": Examples(
        valid={"nothing but the asking": b"{}"},
        refused={
            "a seed of the rank's choosing": as_json({"seed": H32}),
            "a rank (the dealer knows it by its sender)": as_json({"rank": 1}),
            "a list": as_json([]),
            "nothing at all": b"",
        },
    ),
    "seed": Examples(
        valid={"a 32-byte key": as_json({"seed": H32})},
        refused={
            "a key of 16 bytes": as_json({"seed": H16}),
            "a key one byte short": as_json({"seed": hexed(31)}),
            "a key one byte long": as_json({"seed": hexed(33)}),
            "a key that is not hex": as_json({"seed": "k" * 64}),
            "a key as a number": as_json({"seed": 7}),
            "no key": b"{}",
            "the other rank's seed beside it": as_json({"seed": H32, "other": H32}),
        },
    ),
    "tuple_request": Examples(
        valid={
            "a Beaver triple for a matmul": as_json(MATMUL),
            "a Beaver triple for a product": _matmul(op="mul", size1=[1, 128]),
            "a binary triple": as_json(BINARY),
            "a B2A pair": as_json(B2A),
            "a wrap, no second size said": as_json(without(changed(B2A, kind="wraps"), "size1")),
        },
        refused={
            "an empty dimension (it would draw no inputs)": _matmul(size0=[0, 128]),
            "an empty second size of a product": _matmul(size1=[128, 0]),
            "an empty dimension of a one-input tuple": as_json(changed(B2A, size0=[1, 0])),
            "an empty dimension of a binary triple": as_json(changed(BINARY, size1=[0])),
            "a negative dimension": _matmul(size0=[-1, 128]),
            "a dimension as a string": _matmul(size0=["1", "128"]),
            "a dimension past the dealer's limit": _matmul(size0=[MAX_REQUEST_ELEMENTS + 1]),
            "a shape of 9 dimensions": _matmul(size0=[1] * 9),
            "a kind of tuple the dealer does not deal": _matmul(kind="conv"),
            "an operation the forward pass does not compute": _matmul(op="conv2d"),
            "keyword arguments to the operation": _matmul(kwargs={"stride": 2}),
            "a product without its operation": as_json(without(MATMUL, "op")),
            "a product without its second size": as_json(without(MATMUL, "size1")),
            "a second size for a one-input tuple": as_json(changed(B2A, size1=[1, 128])),
            "an operation for a binary triple": as_json(changed(BINARY, op="matmul")),
            "no tuple": _matmul(count=0),
            "one tuple more than the dealer deals at once": _matmul(count=MAX_BULK + 1),
            "id 0 (ids count from 1)": _matmul(id=0),
            "a negative id": _matmul(id=-1),
            "the id as a string": _matmul(id="1"),
            "no id": as_json(without(MATMUL, "id")),
            "the operands beside their sizes": _matmul(operands=[[1.0]]),
            "no kind": as_json(without(MATMUL, "kind")),
        },
    ),
    "tuple_shares": Examples(
        valid={"8 corrections": framed({"count": 8}, TWO)},
        refused={
            "no correction": framed({"count": 0}, TWO),
            "more corrections than the dealer deals at once": framed({"count": MAX_BULK + 1}, TWO),
            "the count as a string": framed({"count": "8"}, TWO),
            "no count": framed({}, TWO),
            "the other rank's seed beside them": framed({"count": 8, "seed": H32}, TWO),
            "no tensors": framed({"count": 8}),
            "tensors that are not a safetensors file": framed({"count": 8}, npy(SHARE)),
        },
    ),
    "tuple_check": Examples(
        valid={"the running hash through tuple 12": as_json(CHECK)},
        refused={
            "a hash one byte short": as_json(changed(CHECK, transcript=hexed(31))),
            "a hash that is not hex": as_json(changed(CHECK, transcript="t" * 64)),
            "a negative tuple id": as_json(changed(CHECK, through=-1)),
            "the tuple id as a string": as_json(changed(CHECK, through="12")),
            "no hash": as_json(without(CHECK, "transcript")),
            "no tuple id": as_json(without(CHECK, "through")),
            "the requests themselves beside their hash": as_json(changed(CHECK, requests=[])),
        },
    ),
    **LEDGER_EXAMPLES,
}

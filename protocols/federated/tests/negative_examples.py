"""Fixed payloads of each federated step that the protocol says its
receiver must refuse, and honest ones (tests/payload_examples.py explains
why they are written by hand; tests/test_negative_examples.py checks them).
What a round's settings mean: docs/federated.md; a contributor's keys and
shares: secagg.py (X25519 keys, Ed25519 signatures, Shamir shares of
32-byte secrets, AES-GCM ciphertexts of 12-byte nonce and 16-byte tag)."""

from typing import Any

import numpy as np

from protocols.attestation.tests.negative_examples import STATEMENT, STATEMENT_REFUSED
from tests.payload_examples import (
    Examples,
    arrays,
    as_json,
    b64,
    changed,
    framed,
    hexed,
    npy,
    without,
)

H32, H64 = hexed(32), hexed(64)
WEIGHTS = b"\x08\x00\x00\x00\x00\x00\x00\x00{}" + bytes(8)  # the model's bytes: the role's to parse

SETTINGS: dict[str, Any] = {
    "mode": "secagg+dp",
    "rounds": 4,
    "threshold": 2,
    "local_steps": 30,
    "batch": 8,
    "learning_rate": 0.002,
    "server_learning_rate": 1.0,
    "max_abs": 8.0,
    "clip": 0.02,
    "noise_multiplier": 1.0,
    "delta": 1e-05,
    "exposure_samples": 1000,
    "contributors": "all",
    "seed": 0,
}
START = {"round": 1, "context": "model_creator/1/00112233aabbccdd", "settings": SETTINGS}


def _start(**fields: Any) -> bytes:
    return framed(changed(START, **fields), WEIGHTS)


def _stated(**fields: Any) -> bytes:
    return _start(settings=changed(SETTINGS, **fields))


KEYS = {"party": "hospital_1", "c": H32, "s": hexed(32, 0x01), "signature": H64}
KEYS_2 = changed(KEYS, party="hospital_2")
DIRECTORY = {"threshold": 2, "participants": {"hospital_1": KEYS, "hospital_2": KEYS_2}}


def _directory(**keys: Any) -> bytes:
    return framed(changed(DIRECTORY, participants={"hospital_1": changed(KEYS, **keys)}))


# to hospital_2 from hospital_1: a nonce, the ciphertext of its shares, a tag
CIPHERTEXT = hexed(12 + 120 + 16)
SURVIVORS = ["hospital_1", "hospital_2", "hospital_3"]
UPDATE_REQUEST = {"survivors": SURVIVORS, "ciphertexts": {"hospital_2": CIPHERTEXT}}
NOISE = {"noise_variance": 123456, "clip": 0.02}
MASKED = arrays(masked=np.arange(16, dtype=np.uint32))
PLAIN = arrays(update=np.zeros(16, dtype=np.float32))
UNMASK = {
    "survivors": ["hospital_1", "hospital_2"],
    "dropped": ["hospital_3"],
    "signatures": {"hospital_1": H64, "hospital_2": hexed(64, 0x01)},
}
# a Shamir share of a 32-byte secret (the self-mask seed b, the mask key s), by index
SHARES = {"b": {"hospital_1": [1, H32], "hospital_2": [1, H32]}, "s": {"hospital_3": [1, H32]}}


def _share(share: Any) -> bytes:
    return as_json(changed(SHARES, b={"hospital_1": share}))


EXAMPLES: dict[str, Examples] = {
    "round_start": Examples(
        valid={"round 1 of secagg+dp": framed(START, WEIGHTS)},
        refused={
            "round 0 (rounds count from 1)": _start(round=0),
            "a negative round": _start(round=-1),
            "the round as a string": _start(round="1"),
            "a fractional round": _start(round=1.5),
            "no round": framed(without(START, "round"), WEIGHTS),
            "an empty context": _start(context=""),
            "no context": framed(without(START, "context"), WEIGHTS),
            "no settings": framed(without(START, "settings"), WEIGHTS),
            "an unknown mode": _stated(mode="trust-me"),
            "secure aggregation with a threshold of 1": _stated(threshold=1),
            "a threshold as a string": _stated(threshold="2"),
            "no rounds": _stated(rounds=0),
            "a negative clip": _stated(clip=-0.02),
            "a clip of 0": _stated(clip=0.0),
            "a NaN noise multiplier": _stated(noise_multiplier=float("nan")),
            "an infinite clip": _stated(clip=float("inf")),
            "a negative noise multiplier": _stated(noise_multiplier=-1.0),
            "a delta of 1": _stated(delta=1.0),
            "a setting no contributor knows": _stated(trust_the_aggregator=True),
            "the settings as a string": _start(settings="secagg+dp"),
            "no weights": framed(START),
            "a list, not a header": framed([1, "model_creator/1/00", SETTINGS], WEIGHTS),
        },
    ),
    "round_keys": Examples(
        valid={"a contributor's signed keys": as_json(KEYS), "none (plain mode)": b"{}"},
        refused={
            "a signature one byte short": as_json(changed(KEYS, signature=hexed(63))),
            "a signature one byte long": as_json(changed(KEYS, signature=hexed(65))),
            "a signature in base64": as_json(changed(KEYS, signature=b64(bytes(64)))),
            "an X25519 key one byte short": as_json(changed(KEYS, c=hexed(31))),
            "an X25519 key one byte long": as_json(changed(KEYS, s=hexed(33))),
            "a key that is not hex": as_json(changed(KEYS, c="k" * 64)),
            "keys without their signature": as_json(without(KEYS, "signature")),
            "keys without their party": as_json(without(KEYS, "party")),
            "a party named by a path": as_json(changed(KEYS, party="../hospital_1")),
            "a private key beside the public ones": as_json(changed(KEYS, c_private=H32)),
            "the keys as a list": as_json(list(KEYS.values())),
        },
    ),
    "key_directory": Examples(
        valid={"two participants": framed(DIRECTORY)},
        refused={
            "a threshold of 0": framed(changed(DIRECTORY, threshold=0)),
            "the threshold as a string": framed(changed(DIRECTORY, threshold="2")),
            "no threshold": framed(without(DIRECTORY, "threshold")),
            "the participants as a list": framed(changed(DIRECTORY, participants=[KEYS, KEYS_2])),
            "a participant's signature one byte short": _directory(signature=hexed(63)),
            "a participant's key one byte long": _directory(s=hexed(33)),
            "a participant's keys without a signature": framed(
                changed(DIRECTORY, participants={"hospital_1": without(KEYS, "signature")})
            ),
            "a participant named by a path": framed(
                changed(DIRECTORY, participants={"../hospital_1": KEYS})
            ),
            "a field the directory does not have": framed(changed(DIRECTORY, round=1)),
            "bytes after the header": framed(DIRECTORY, b"\x00"),
        },
    ),
    "encrypted_shares": Examples(
        valid={"a ciphertext per peer": as_json({"hospital_2": CIPHERTEXT})},
        refused={
            "a ciphertext that is not hex": as_json({"hospital_2": "shares of hospital_1"}),
            "a ciphertext of an odd number of hex digits": as_json({"hospital_2": CIPHERTEXT[1:]}),
            "a ciphertext as a number": as_json({"hospital_2": 7}),
            "the shares in the clear": as_json({"hospital_2": {"b": H32, "s": H32, "index": 2}}),
            "a peer named by a path": as_json({"../hospital_2": CIPHERTEXT}),
            "a list of ciphertexts": as_json([CIPHERTEXT]),
        },
        left_to_role={
            "an empty ciphertext (nonce and tag alone are 28 bytes)": as_json({"hospital_2": ""}),
            "a ciphertext shorter than its nonce and tag": as_json({"hospital_2": hexed(27)}),
        },
    ),
    "update_request": Examples(
        valid={"the survivors and the shares addressed to this one": framed(UPDATE_REQUEST)},
        refused={
            "the survivors as one string": framed(changed(UPDATE_REQUEST, survivors="hospital_1")),
            "a survivor as a number": framed(changed(UPDATE_REQUEST, survivors=[1, 2])),
            "a survivor named by a path": framed(changed(UPDATE_REQUEST, survivors=["a/b"])),
            "no survivors": framed(without(UPDATE_REQUEST, "survivors")),
            "no ciphertexts": framed(without(UPDATE_REQUEST, "ciphertexts")),
            "a ciphertext that is not hex": framed(
                changed(UPDATE_REQUEST, ciphertexts={"hospital_2": "zz"})
            ),
            "more survivors than any run has contributors": framed(
                changed(UPDATE_REQUEST, survivors=[f"h{i}" for i in range(5000)])
            ),
            "a field the request does not have": framed(changed(UPDATE_REQUEST, clip=1e9)),
            "bytes after the header": framed(UPDATE_REQUEST, b"\x00"),
        },
    ),
    "masked_update": Examples(
        valid={
            "a masked update and its stated noise (secagg+dp)": framed(NOISE, MASKED),
            "a masked update alone (secagg)": framed({}, MASKED),
        },
        refused={
            "a negative noise variance": framed(changed(NOISE, noise_variance=-1), MASKED),
            "a fractional noise variance": framed(changed(NOISE, noise_variance=0.5), MASKED),
            "the noise variance as a string": framed(
                changed(NOISE, noise_variance="123456"), MASKED
            ),
            "a clip of 0": framed(changed(NOISE, clip=0.0), MASKED),
            "a NaN clip": framed(changed(NOISE, clip=float("nan")), MASKED),
            "the noise without its clip": framed(without(NOISE, "clip"), MASKED),
            "the clip without the noise": framed(without(NOISE, "noise_variance"), MASKED),
            "the update in the header": framed({"update": [0.1, 0.2]}, MASKED),
            "no update": framed(NOISE),
            "an update that is not a safetensors file": framed(
                NOISE, npy(np.arange(16, dtype=np.uint32))
            ),
        },
    ),
    "plain_update": Examples(
        valid={"an update": framed({}, PLAIN)},
        refused={
            "the update in the header": framed({"update": [0.0] * 16}, PLAIN),
            "a stated noise (plain mode adds none)": framed(NOISE, PLAIN),
            "no update": framed({}),
            "an update that is not a safetensors file": framed(
                {}, npy(np.zeros(16, dtype=np.float32))
            ),
            "raw float32 bytes": framed({}, np.zeros(16, dtype=np.float32).tobytes()),
        },
    ),
    "consistency_request": Examples(
        valid={"the survivors": framed({"survivors": SURVIVORS})},
        refused={
            "no survivors": framed({}),
            "the survivors as an object": framed({"survivors": {"hospital_1": True}}),
            "a survivor's name of 65 characters": framed({"survivors": ["h" * 65]}),
            "a survivor with a space in its name": framed({"survivors": ["hospital 1"]}),
            "the dropped beside the survivors": framed({"survivors": SURVIVORS, "dropped": []}),
            "bytes after the header": framed({"survivors": SURVIVORS}, b"\x00"),
        },
    ),
    "consistency_signature": Examples(
        valid={"an Ed25519 signature": as_json({"signature": H64})},
        refused={
            "a signature one byte short": as_json({"signature": hexed(63)}),
            "a signature one byte long": as_json({"signature": hexed(65)}),
            "a signature in base64": as_json({"signature": b64(bytes(64))}),
            "an empty signature": as_json({"signature": ""}),
            "a null signature": as_json({"signature": None}),
            "no signature": b"{}",
            "the survivors it signed beside it": as_json(
                {"signature": H64, "survivors": SURVIVORS}
            ),
        },
    ),
    "unmask_request": Examples(
        valid={"survivors, dropped and their signatures": framed(UNMASK)},
        refused={
            "a signature one byte short": framed(
                changed(UNMASK, signatures={"hospital_1": hexed(63)})
            ),
            "a signature that is not hex": framed(
                changed(UNMASK, signatures={"hospital_1": "s" * 128})
            ),
            "the signatures as a list": framed(changed(UNMASK, signatures=[H64])),
            "no signatures": framed(without(UNMASK, "signatures")),
            "no dropped": framed(without(UNMASK, "dropped")),
            "no survivors": framed(without(UNMASK, "survivors")),
            "a dropped party as a number": framed(changed(UNMASK, dropped=[3])),
            "a field the request does not have": framed(changed(UNMASK, reveal="both")),
            "bytes after the header": framed(UNMASK, b"\x00"),
        },
    ),
    "unmask_shares": Examples(
        valid={"b shares of the survivors, s shares of the dropped": as_json(SHARES)},
        refused={
            "a share of index 0 (Shamir's indexes start at 1)": _share([0, H32]),
            "a negative share index": _share([-1, H32]),
            "a share index as a string": _share(["1", H32]),
            "a share that is not hex": _share([1, "share"]),
            "a share as an object": _share({"index": 1, "share": H32}),
            "a share with a third part": _share([1, H32, H32]),
            "a share without its index": _share([H32]),
            "no s shares": as_json(without(SHARES, "s")),
            "no b shares": as_json(without(SHARES, "b")),
            "a party named by a path": as_json(changed(SHARES, b={"../h": [1, H32]})),
            "a kind of share the protocol has not": as_json(changed(SHARES, c={})),
        },
        left_to_role={
            "an empty share (a share of a 32-byte secret is 32 bytes)": _share([1, ""]),
            "a share of 3 bytes": _share([1, hexed(3)]),
        },
    ),
    "update_rejected": Examples(
        valid={"why": framed({"reason": "the update holds values beyond +-8.0"})},
        refused={
            "no reason": framed({}),
            "the reason as a number": framed({"reason": 7}),
            "a reason of 100 000 characters": framed({"reason": "r" * 100_000}),
            "the rejected update beside the reason": framed({"reason": "bad", "update": [1.0]}),
            "bytes after the header": framed({"reason": "bad"}, b"\x00"),
        },
    ),
    "final_model": Examples(
        valid={"the weights": framed({}, WEIGHTS)},
        refused={
            "no weights": framed({}),
            "a root stated for the contributor to trust": framed({"root": H32}, WEIGHTS),
            "a header that is not JSON": framed(b"weights", WEIGHTS),
            "a header that runs past the payload": b"\x00\x00\x10\x00{}",
        },
    ),
    "model_countersignature": Examples(
        valid={"a signed countersignature": as_json(STATEMENT)},
        refused={why: as_json(bad) for why, bad in STATEMENT_REFUSED.items()},
    ),
}

"""Fixed payloads of each walkthrough step that the protocol says its
receiver must refuse, and honest ones (tests/payload_examples.py explains
why they are written by hand; tests/test_negative_examples.py checks them)."""

from tests.payload_examples import Examples, as_json, b64, changed, hexed, without

H32 = hexed(32)

COMMITMENT = {"records": 20, "sha256": H32}
CARD = {"model": "airlock-tiny", "trained_on": ["hospital_1", "hospital_2"]}
PUBLISHED = {"card": CARD, "weights_sha256": H32}
CATALOG = {"titles": ["Asthma: inhaled corticosteroids", "Type 2 diabetes: metformin"]}
# the AES-GCM nonce (12 bytes) and the ciphertext of "hello" with its 16-byte tag
SEALED = bytes(12) + bytes(5) + bytes(16)

EXAMPLES: dict[str, Examples] = {
    "dataset_commitment": Examples(
        valid={"a count and the records' SHA-256": as_json(COMMITMENT)},
        refused={
            "a digest one byte short": as_json(changed(COMMITMENT, sha256=hexed(31))),
            "a digest one byte long": as_json(changed(COMMITMENT, sha256=hexed(33))),
            "a digest in base64": as_json(changed(COMMITMENT, sha256=b64(bytes(32)))),
            "a digest that is not hex": as_json(changed(COMMITMENT, sha256="z" * 64)),
            "no digest": as_json(without(COMMITMENT, "sha256")),
            "no record count": as_json(without(COMMITMENT, "records")),
            "a negative record count": as_json(changed(COMMITMENT, records=-1)),
            "the record count as a string": as_json(changed(COMMITMENT, records="20")),
            "a fractional record count": as_json(changed(COMMITMENT, records=20.5)),
            "the records themselves": as_json(changed(COMMITMENT, data=["note 1", "note 2"])),
            "not JSON": b"records=20",
        },
    ),
    "model_card": Examples(
        valid={"a card and the weights' SHA-256": as_json(PUBLISHED)},
        refused={
            "a weights digest of 16 bytes": as_json(changed(PUBLISHED, weights_sha256=hexed(16))),
            "no weights digest": as_json(without(PUBLISHED, "weights_sha256")),
            "no card": as_json(without(PUBLISHED, "card")),
            "a card without its datasets": as_json(
                changed(PUBLISHED, card=without(CARD, "trained_on"))
            ),
            "the datasets as one string": as_json(
                changed(PUBLISHED, card=changed(CARD, trained_on="hospital_1,hospital_2"))
            ),
            "a dataset named by a path": as_json(
                changed(PUBLISHED, card=changed(CARD, trained_on=["../hospital_1"]))
            ),
            "a model without a name": as_json(changed(PUBLISHED, card=changed(CARD, model=""))),
            "the weights in the card": as_json(
                changed(PUBLISHED, card=changed(CARD, weights=hexed(64)))
            ),
            "more datasets than any run has contributors": as_json(
                changed(PUBLISHED, card=changed(CARD, trained_on=[f"h{i}" for i in range(5000)]))
            ),
        },
    ),
    "catalog_request": Examples(
        valid={"nothing": b"{}"},
        refused={
            "a topic of interest (a request says nothing)": as_json({"topic": "asthma"}),
            "a list": as_json([]),
            "no payload": b"",
        },
    ),
    "catalog": Examples(
        valid={"two titles": as_json(CATALOG), "none": as_json({"titles": []})},
        refused={
            "no titles": as_json({}),
            "the titles as one string": as_json({"titles": "Asthma; Diabetes"}),
            "an empty title": as_json({"titles": [""]}),
            "a title as a number": as_json({"titles": [7]}),
            "a whole document as a title": as_json({"titles": ["a" * 5000]}),
            "the documents beside their titles": as_json(changed(CATALOG, documents=["..."])),
        },
    ),
    "sealed_prompt": Examples(
        valid={"a nonce, a ciphertext and its tag": SEALED},
        refused={
            "nothing": b"",
            "a nonce alone": bytes(12),
            "a nonce and a tag one byte short": bytes(12 + 15),
        },
    ),
    "prompt_receipt": Examples(
        valid={"the sealed prompt's SHA-256": bytes(32)},
        refused={
            "nothing": b"",
            "a digest one byte short": bytes(31),
            "a digest one byte long": bytes(33),
            "the digest as hex text": H32.encode(),
        },
    ),
}

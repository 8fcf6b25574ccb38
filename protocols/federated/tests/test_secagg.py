"""Secure aggregation primitives: masks cancel, with and without dropouts;
Shamir thresholds; fixed-point range checks; forged keys and shares refused;
the consistency check's signatures and the majority threshold."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocols.federated.secagg import (
    SCALE,
    AdvertisedKeys,
    KeyShare,
    RoundSecrets,
    SecAggError,
    check_threshold,
    combine_shares,
    consistent_signers,
    decode_sum,
    encode,
    max_contributors,
    share_secret,
    survivors_message,
    unmask,
)

CONTEXT = b"aggregator/1/test"
NAMES = ["alpha", "bravo", "charlie", "delta"]
SIZE = 1000


def setup_round(threshold: int = 3):
    identities = {n: ed25519.Ed25519PrivateKey.generate() for n in NAMES}
    secrets = {n: RoundSecrets(n, CONTEXT) for n in NAMES}
    keys = {n: secrets[n].advertise(identities[n].sign) for n in NAMES}
    # every ciphertext addressed to every peer, opened by that peer
    shares: dict[str, dict[str, KeyShare]] = {n: {} for n in NAMES}
    for sender in NAMES:
        for receiver, ciphertext in (
            secrets[sender].encrypted_shares(list(keys.values()), threshold).items()
        ):
            shares[receiver][sender] = secrets[receiver].open_share(keys[sender], ciphertext)
    rng = np.random.default_rng(1)
    updates = {n: rng.uniform(-1, 1, SIZE).astype(np.float32) for n in NAMES}
    return identities, secrets, keys, shares, updates


def test_pairwise_masks_cancel_and_self_masks_are_removed() -> None:
    _, secrets, keys, shares, updates = setup_round()
    masked = {n: secrets[n].mask(encode(updates[n], 1.0), keys.values()) for n in NAMES}
    # a single masked update reveals nothing recognisable of the update
    assert not np.array_equal(masked["alpha"], encode(updates["alpha"], 1.0))
    total = np.zeros(SIZE, dtype=np.uint32)
    for value in masked.values():
        total += value
    seeds = {
        n: combine_shares({shares[h][n].index: shares[h][n].b for h in NAMES[:3]}, 3) for n in NAMES
    }
    result = decode_sum(unmask(total, CONTEXT, keys, {}, seeds, {}), 4, 1.0)
    np.testing.assert_allclose(result, sum(updates.values()), atol=4 / SCALE)


def test_a_dropout_after_key_sharing_is_unmasked_from_the_survivors_shares() -> None:
    _, secrets, keys, shares, updates = setup_round()
    survivors, dropped = NAMES[:3], "delta"  # delta shared its keys, then vanished
    total = np.zeros(SIZE, dtype=np.uint32)
    for name in survivors:
        total += secrets[name].mask(encode(updates[name], 1.0), keys.values())
    b_seeds = {
        n: combine_shares({shares[h][n].index: shares[h][n].b for h in survivors}, 3)
        for n in survivors
    }
    s_key = combine_shares({shares[h][dropped].index: shares[h][dropped].s for h in survivors}, 3)
    result = decode_sum(
        unmask(
            total,
            CONTEXT,
            {n: keys[n] for n in survivors},
            {dropped: keys[dropped]},
            b_seeds,
            {dropped: s_key},
        ),
        3,
        1.0,
    )
    np.testing.assert_allclose(result, sum(updates[n] for n in survivors), atol=3 / SCALE)


def test_shamir_needs_threshold_shares() -> None:
    secret = bytes(range(32))
    shares = share_secret(secret, 3, 5)
    assert combine_shares({i + 1: shares[i] for i in (0, 2, 4)}, 3) == secret
    assert combine_shares({i + 1: shares[i] for i in (1, 3, 4)}, 3) == secret
    with pytest.raises(SecAggError, match="2 shares cannot rebuild a 3-of-n"):
        combine_shares({1: shares[0], 2: shares[1]}, 3)
    # a wrong index gives a wrong secret, never the right one
    assert combine_shares({1: shares[0], 2: shares[1], 4: shares[2]}, 3) != secret


def test_fixed_point_refuses_nan_inf_and_out_of_range() -> None:
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(SecAggError, match="NaN or infinite"):
            encode(np.array([0.5, bad], dtype=np.float32), 1.0)
    with pytest.raises(SecAggError, match="beyond"):
        encode(np.array([1.5], dtype=np.float32), 1.0)
    np.testing.assert_allclose(
        decode_sum(encode(np.array([-0.75, 0.5], dtype=np.float32), 1.0), 1, 1.0), [-0.75, 0.5]
    )
    # a sum no two in-range updates can give betrays an out-of-range input
    with pytest.raises(SecAggError, match="out of range"):
        decode_sum(np.array([5 * SCALE], dtype=np.uint32), 2, 1.0)
    assert max_contributors(8.0) == 4095


def test_keys_relayed_by_the_aggregator_must_be_the_contributors_own() -> None:
    identities, _, keys, _, _ = setup_round()
    public = identities["alpha"].public_key()
    data = keys["alpha"].to_json()
    assert AdvertisedKeys.from_json(data, CONTEXT, public, "alpha") == keys["alpha"]
    substituted = {**data, "s": keys["bravo"].s_public.hex()}
    with pytest.raises(SecAggError, match="do not verify"):
        AdvertisedKeys.from_json(substituted, CONTEXT, public, "alpha")
    with pytest.raises(SecAggError, match="do not verify"):  # replayed into another round
        AdvertisedKeys.from_json(data, b"aggregator/2/test", public, "alpha")
    with pytest.raises(SecAggError, match="do not verify"):
        AdvertisedKeys.from_json({"party": "alpha"}, CONTEXT, public, "alpha")


def test_tampered_or_misdirected_share_ciphertexts_are_refused() -> None:
    _, secrets, keys, _, _ = setup_round()
    ciphertexts = secrets["alpha"].encrypted_shares(list(keys.values()), 3)
    flipped = bytearray.fromhex(ciphertexts["bravo"])
    flipped[-1] ^= 1
    with pytest.raises(SecAggError, match="do not decrypt"):
        secrets["bravo"].open_share(keys["alpha"], flipped.hex())
    with pytest.raises(SecAggError, match="do not decrypt"):  # meant for charlie
        secrets["bravo"].open_share(keys["alpha"], ciphertexts["charlie"])
    with pytest.raises(SecAggError, match="do not decrypt"):
        secrets["bravo"].open_share(keys["alpha"], "not hex")
    opened = secrets["bravo"].open_share(keys["alpha"], ciphertexts["bravo"])
    assert opened.index == 2 and len(opened.b) == 16 and len(opened.s) == 32


def test_the_threshold_must_be_a_strict_majority_of_the_contributors() -> None:
    for threshold, contributors in ((3, 4), (2, 3), (4, 4), (6, 10)):
        check_threshold(threshold, contributors)
    for threshold, contributors in ((2, 4), (3, 6), (5, 10), (5, 4)):
        with pytest.raises(SecAggError, match=f"threshold {threshold} does not fit"):
            check_threshold(threshold, contributors)


def test_only_members_signing_exactly_the_survivor_set_count() -> None:
    identities, _, _, _, _ = setup_round()
    survivors = ["alpha", "bravo", "charlie"]

    def signed(name: str, names: list[str]) -> str:
        return identities[name].sign(survivors_message(CONTEXT, names)).hex()

    def key_of(name: str) -> ed25519.Ed25519PublicKey:
        return identities[name].public_key()

    signatures = {
        "alpha": signed("alpha", survivors),
        "bravo": signed("bravo", list(reversed(survivors))),  # the order does not matter
        "charlie": signed("charlie", ["alpha", "bravo"]),  # another set
        "delta": signed("delta", survivors),  # not a member of the set
    }
    assert consistent_signers(signatures, survivors, CONTEXT, key_of) == {"alpha", "bravo"}
    forged = {"alpha": signed("bravo", survivors), "bravo": "zz", "charlie": "00" * 64}
    assert consistent_signers(forged, survivors, CONTEXT, key_of) == set()
    other_round = {"alpha": identities["alpha"].sign(survivors_message(b"x/2/y", survivors)).hex()}
    assert consistent_signers(other_round, survivors, CONTEXT, key_of) == set()

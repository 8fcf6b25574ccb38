"""Secure aggregation after Bonawitz et al., "Practical Secure Aggregation
for Privacy-Preserving Machine Learning" (CCS 2017), the semi-honest
protocol with dropouts; the parties are in `aggregator.py`, `contributor.py`
and `update.py`, the messages in `messages.py`.

Each contributor u holds two X25519 key pairs per round: c (to encrypt the
shares it sends peers through the aggregator) and s (to agree pairwise mask
seeds). It masks its fixed-point update x_u as

    y_u = x_u + PRG(b_u) + sum over peers v of sign(u, v) * PRG(s_uv)  (mod 2^32)

with sign +1 if u < v and -1 if u > v, so the pairwise masks cancel in the
sum. b_u and s_u's private key are Shamir-shared t-of-n among the peers.
After the masked inputs arrive, each survivor reveals, for every peer,
the share of b (peer survived) or of s's private key (peer dropped), never
both; the aggregator rebuilds the self-masks of the survivors and the
pairwise masks of the dropped, and removes them. Before revealing anything,
each survivor checks the consistency round (the paper's round 3, for an
active aggregator): at least t members of the survivor set signed exactly
that set with their identity keys. Each contributor signs one set a round
and t > n/2, so no two different sets can both gather t signatures, and a
peer's b and s are never both revealed.

Libraries: `cryptography` for X25519, HKDF, AES-CTR (the PRG) and AES-GCM;
PyCryptodome's Shamir (GF(2^128), 16-byte secrets; a 32-byte key is shared
as two halves).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from parties.errors import AirlockError

SCALE = 1 << 16  # fixed point: 16 fractional bits, sums mod 2^32
RAW = serialization.Encoding.Raw


class SecAggError(AirlockError):
    """A secure-aggregation message or value that does not check out."""


def check_threshold(threshold: int, contributors: int) -> None:
    """t-of-n sharing among n contributors needs n/2 < t <= n. Below a strict
    majority an aggregator could gather t consistency signatures on two
    different survivor sets, one where u survived (its self-mask seed
    revealed) and one where u dropped (its mask key revealed), and unmask u."""
    if not contributors / 2 < threshold <= contributors:
        raise SecAggError(
            f"threshold {threshold} does not fit {contributors} contributors: secure "
            f"aggregation needs more than half of them and at most all (n/2 < t <= n)"
        )


# -- fixed point ---------------------------------------------------------------


def max_contributors(max_abs: float) -> int:
    """How many updates bounded by `max_abs` can be summed without overflow."""
    return int((1 << 31) / (max_abs * SCALE)) - 1


def encode(update: np.ndarray, max_abs: float) -> np.ndarray:
    """float32 -> uint32 fixed point; refuses non-finite or out-of-range values."""
    if not np.all(np.isfinite(update)):
        raise SecAggError("the update holds NaN or infinite values")
    if np.max(np.abs(update), initial=0.0) > max_abs:
        raise SecAggError(f"the update holds values beyond +-{max_abs}")
    return fixed_point(update)


def fixed_point(update: np.ndarray) -> np.ndarray:
    """The encoding alone, unchecked (a faulty contributor's path to the wire)."""
    with np.errstate(invalid="ignore"):
        return np.round(update.astype(np.float64) * SCALE).astype(np.int64).astype(np.uint32)


def decode_sum(total: np.ndarray, count: int, max_abs: float) -> np.ndarray:
    """uint32 sum of `count` encoded updates -> float32; refuses a sum that no
    `count` in-range updates could give (some input was out of range)."""
    values = total.view(np.int32).astype(np.float64) / SCALE
    if np.max(np.abs(values), initial=0.0) > count * max_abs + 1 / SCALE:
        raise SecAggError(
            "the unmasked sum is out of range: a contributor masked an out-of-range update"
        )
    return values.astype(np.float32)


# -- keys, seeds, PRG ----------------------------------------------------------


def _hkdf(secret: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


def prg(seed: bytes, length: int) -> np.ndarray:
    """`length` uint32 words of AES-256-CTR keystream; each seed is used once."""
    key = _hkdf(seed, b"airlock secagg prg")
    encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    return np.frombuffer(encryptor.update(bytes(4 * length)), dtype=np.uint32)


def public_bytes(key: x25519.X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(RAW, serialization.PublicFormat.Raw)


def private_bytes(key: x25519.X25519PrivateKey) -> bytes:
    return key.private_bytes(RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def pair_seed(mine: x25519.X25519PrivateKey, theirs: bytes, context: bytes) -> bytes:
    shared = mine.exchange(x25519.X25519PublicKey.from_public_bytes(theirs))
    return _hkdf(shared, b"airlock secagg pair " + context)


def sign_of(me: str, peer: str) -> int:
    return 1 if me < peer else -1


@dataclass(frozen=True)
class AdvertisedKeys:
    """A contributor's round keys, signed with its identity key so that the
    aggregator, which relays them, cannot substitute its own."""

    party: str
    c_public: bytes
    s_public: bytes
    signature: bytes

    @staticmethod
    def message(context: bytes, party: str, c_public: bytes, s_public: bytes) -> bytes:
        return b"airlock secagg keys\n" + context + b"\n" + party.encode() + c_public + s_public

    def to_json(self) -> dict[str, str]:
        return {
            "party": self.party,
            "c": self.c_public.hex(),
            "s": self.s_public.hex(),
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(
        cls, data: object, context: bytes, key: ed25519.Ed25519PublicKey, party: str
    ) -> AdvertisedKeys:
        try:
            if not isinstance(data, dict):
                raise TypeError("the keys are not an object")
            keys = cls(
                str(data["party"]),
                bytes.fromhex(data["c"]),
                bytes.fromhex(data["s"]),
                bytes.fromhex(data["signature"]),
            )
            x25519.X25519PublicKey.from_public_bytes(keys.c_public)
            x25519.X25519PublicKey.from_public_bytes(keys.s_public)
            key.verify(keys.signature, cls.message(context, party, keys.c_public, keys.s_public))
        except Exception:
            raise SecAggError(f"the advertised keys of {party} do not verify") from None
        if keys.party != party:
            raise SecAggError(f"keys advertised for {keys.party} were relayed as {party}'s")
        return keys


class RoundSecrets:
    """One contributor's secrets for one round."""

    def __init__(self, party: str, context: bytes) -> None:
        self.party = party
        self.context = context
        self.c = x25519.X25519PrivateKey.generate()
        self.s = x25519.X25519PrivateKey.generate()
        self.b = os.urandom(16)

    def advertise(self, sign: Callable[[bytes], bytes]) -> AdvertisedKeys:
        c_public, s_public = public_bytes(self.c), public_bytes(self.s)
        return AdvertisedKeys(
            self.party,
            c_public,
            s_public,
            sign(AdvertisedKeys.message(self.context, self.party, c_public, s_public)),
        )

    def _channel(self, peer: AdvertisedKeys) -> AESGCM:
        shared = self.c.exchange(x25519.X25519PublicKey.from_public_bytes(peer.c_public))
        return AESGCM(_hkdf(shared, b"airlock secagg shares " + self.context))

    def encrypted_shares(self, peers: Sequence[AdvertisedKeys], threshold: int) -> dict[str, str]:
        """t-of-n shares of b and of s's private key, one ciphertext per peer
        (itself included), addressed by name; hex AES-GCM nonce + ciphertext."""
        order = sorted(p.party for p in peers)
        b_shares = share_secret(self.b, threshold, len(order))
        s_shares = share_secret(private_bytes(self.s), threshold, len(order))
        by_name = {p.party: p for p in peers}
        out = {}
        for index, name in enumerate(order):
            plain = json.dumps(
                {"b": b_shares[index].hex(), "s": s_shares[index].hex(), "index": index + 1}
            ).encode()
            nonce = os.urandom(12)
            aad = _share_aad(self.context, self.party, name)
            out[name] = (nonce + self._channel(by_name[name]).encrypt(nonce, plain, aad)).hex()
        return out

    def open_share(self, sender: AdvertisedKeys, ciphertext_hex: str) -> KeyShare:
        """Decrypt the shares `sender` addressed to this party."""
        try:
            raw = bytes.fromhex(ciphertext_hex)
            plain = self._channel(sender).decrypt(
                raw[:12], raw[12:], _share_aad(self.context, sender.party, self.party)
            )
            data = json.loads(plain)
            return KeyShare(int(data["index"]), bytes.fromhex(data["b"]), bytes.fromhex(data["s"]))
        except (InvalidTag, ValueError, KeyError, TypeError):
            raise SecAggError(f"the key shares from {sender.party} do not decrypt") from None

    def mask(self, encoded: np.ndarray, peers: Iterable[AdvertisedKeys]) -> np.ndarray:
        masked = encoded + prg(self.b, encoded.size)
        for peer in peers:
            if peer.party == self.party:
                continue
            pairwise = prg(pair_seed(self.s, peer.s_public, self.context), encoded.size)
            masked = masked + pairwise if sign_of(self.party, peer.party) > 0 else masked - pairwise
        return masked


@dataclass(frozen=True)
class KeyShare:
    """The shares of one peer's self-mask seed b and mask key s held by this party."""

    index: int
    b: bytes
    s: bytes


def _share_aad(context: bytes, sender: str, receiver: str) -> bytes:
    return context + b"\n" + sender.encode() + b"->" + receiver.encode()


# -- consistency check (Bonawitz et al. round 3) -------------------------------


def survivors_message(context: bytes, survivors: Collection[str]) -> bytes:
    """What a survivor signs: this round's survivor set U3, in a canonical form."""
    return b"airlock secagg survivors\n" + context + b"\n" + json.dumps(sorted(survivors)).encode()


def consistent_signers(
    signatures: Mapping[str, str],
    survivors: Collection[str],
    context: bytes,
    key_of: Callable[[str], ed25519.Ed25519PublicKey],
) -> set[str]:
    """The members of `survivors` whose signature (hex) is valid over exactly
    this set; anything else (a non-member, a signature over another set,
    garbage) counts for nothing."""
    message = survivors_message(context, survivors)
    signers = set()
    for name, signature in signatures.items():
        if name not in survivors:
            continue
        try:
            key_of(name).verify(bytes.fromhex(signature), message)
        except (InvalidSignature, ValueError, TypeError, KeyError):  # not a signer
            continue
        signers.add(name)
    return signers


# -- Shamir ----------------------------------------------------------------------


def share_secret(secret: bytes, threshold: int, count: int) -> list[bytes]:
    """`count` shares (share i for index i + 1) of a 16- or 32-byte secret."""
    chunks = [secret[i : i + 16] for i in range(0, len(secret), 16)]
    per_chunk = [Shamir.split(threshold, count, chunk, ssss=False) for chunk in chunks]
    return [b"".join(shares[i][1] for shares in per_chunk) for i in range(count)]


def combine_shares(shares: Mapping[int, bytes], threshold: int) -> bytes:
    if len(shares) < threshold:
        raise SecAggError(f"{len(shares)} shares cannot rebuild a {threshold}-of-n secret")
    chosen = sorted(shares.items())[:threshold]
    length = len(chosen[0][1])
    if any(len(share) != length or length % 16 for _, share in chosen):
        raise SecAggError("shares of unequal or invalid length")
    return b"".join(
        Shamir.combine([(index, share[i : i + 16]) for index, share in chosen], ssss=False)
        for i in range(0, length, 16)
    )


def unmask(
    masked_sum: np.ndarray,
    context: bytes,
    survivors: Mapping[str, AdvertisedKeys],
    dropped: Mapping[str, AdvertisedKeys],
    self_seeds: Mapping[str, bytes],
    dropped_keys: Mapping[str, bytes],
) -> np.ndarray:
    """Remove the survivors' self-masks and the masks they share with the
    dropped (whose s private keys were rebuilt) from the sum of the
    survivors' masked inputs."""
    total = masked_sum.copy()
    for name in survivors:
        total -= prg(self_seeds[name], total.size)
    for name, key_bytes in dropped_keys.items():
        key = x25519.X25519PrivateKey.from_private_bytes(key_bytes)
        if public_bytes(key) != dropped[name].s_public:
            raise SecAggError(f"the rebuilt key of {name} does not match its advertised key")
        for survivor, keys in survivors.items():
            pairwise = prg(pair_seed(key, keys.s_public, context), total.size)
            # the survivor added sign(survivor, dropped) * PRG
            total = total - pairwise if sign_of(survivor, name) > 0 else total + pairwise
    return total

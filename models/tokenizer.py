"""The shared model's tokenizer: byte-pair encoding over a fixed alphabet,
trained offline on the public corpus with Hugging Face `tokenizers`.

Word pieces make a question and a whole retrieved guideline fit the
model's context with room for the answer (about four characters a token,
against one for characters). The alphabet stays the characters' one
(lower-case letters, digits, a little punctuation): text outside it is
refused with the character named, never silently mapped to an unknown
token, and every accepted text decodes back to itself exactly, so canary
and prompt checks keep meaning what they say.

Spaces become `_` inside tokens (a Metaspace pre-tokenizer), which is why
`_` is not in the alphabet.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from models.transformer import VOCAB, BadPrompt, within_alphabet

UNKNOWN = "[unk]"
SPACE = "_"


def _metaspace() -> tuple[pre_tokenizers.Metaspace, decoders.Metaspace]:
    return (
        pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="never", split=True),
        decoders.Metaspace(replacement=SPACE, prepend_scheme="never", split=True),
    )


class WordPieces:
    """Encode and decode text for the shared model."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._unknown = tokenizer.token_to_id(UNKNOWN)

    @classmethod
    def train(cls, text: str, vocab_size: int) -> WordPieces:
        """Learn `vocab_size` word pieces from `text` (deterministic: the same
        text and size give the same tokenizer, byte for byte)."""
        tokenizer = Tokenizer(models.BPE(unk_token=UNKNOWN))
        tokenizer.pre_tokenizer, tokenizer.decoder = _metaspace()
        alphabet = sorted(VOCAB.replace(" ", SPACE))
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[UNKNOWN],
            initial_alphabet=alphabet,
            limit_alphabet=len(alphabet),
            show_progress=False,
        )
        tokenizer.train_from_iterator([text], trainer)
        return cls(tokenizer)

    @classmethod
    def from_json(cls, data: str) -> WordPieces:
        return cls(Tokenizer.from_str(data))

    def to_json(self) -> str:
        return str(self._tokenizer.to_str())

    @property
    def size(self) -> int:
        return int(self._tokenizer.get_vocab_size())

    def encode(self, text: str) -> list[int]:
        """Lower-case and encode; BadPrompt names the first character outside
        the alphabet (or any text that would not decode back to itself)."""
        text = within_alphabet(text)
        ids = list(self._tokenizer.encode(text).ids)
        if self._unknown in ids or self.decode(ids) != text:
            raise BadPrompt(f"text does not survive tokenization: {text[:40]!r}")
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tokenizer.decode(list(ids)))

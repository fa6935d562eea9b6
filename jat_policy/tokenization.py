"""The offline default tokenizer: a small byte-level BPE in which every BabyAI word is one token.

It needs no download and is the same on every machine; it is saved with every checkpoint anyway. GPT-2's tokenizer
(what the released ``jat-project/jat`` uses) is loaded with ``JatProcessor(tokenizer="gpt2")`` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

__all__ = ["BABYAI_VOCABULARY", "EOS_TOKEN", "build_default_tokenizer", "tokenize_missions"]

EOS_TOKEN = "<|endoftext|>"

BABYAI_VOCABULARY: tuple[str, ...] = (
    # verbs and connectives of minigrid's BabyAI verifier (GoTo/Open/Pickup/PutNext, and/then/after)
    *("go", "to", "open", "pick", "up", "put", "next", "then", "after", "you", "and", "the", "a"),
    *("object", "box", "ball", "key", "door"),
    *("red", "green", "blue", "purple", "yellow", "grey"),
    *("in", "front", "of", "behind", "on", "your", "left", "right"),
    # other minigrid missions, so they stay short too
    *("get", "goal", "square", "avoid", "lava", "find", "opening", "use", "reach", "matching", "at", "end"),
    *("hallway", "traverse", "rooms", "near", "fetch", "must"),
)
"""Words that are one token each in the default tokenizer, alone or after a space."""

_DEFAULT_VOCAB_CAP = 512


def build_default_tokenizer(model_max_length: int = 512) -> PreTrainedTokenizerBase:
    """Build the offline default tokenizer: a small byte-level BPE, the same on every machine.

    It is trained with the ``tokenizers`` library on :data:`BABYAI_VOCABULARY`, so every BabyAI word is a single
    token (with or without a leading space), while any other text still round-trips through its UTF-8 bytes, like
    GPT-2's tokenizer. ``<|endoftext|>`` is the eos, bos, unk and pad token (the last id). Training takes a few
    milliseconds and needs no download; the result is deterministic, and it is saved with every checkpoint anyway.

    Args:
        model_max_length: Stored as the tokenizer's ``model_max_length`` (tokens).

    Returns:
        A ``transformers`` fast tokenizer (vocabulary of 256 bytes + merges + ``<|endoftext|>``, < 512 ids).

    Example:
        >>> tok = build_default_tokenizer()
        >>> len(tok("go to the red ball", add_special_tokens=False)["input_ids"])
        5
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [form for word in BABYAI_VOCABULARY for form in (word, " " + word)] + [","]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_DEFAULT_VOCAB_CAP - 1,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    backend.train_from_iterator(corpus, trainer)
    backend.add_special_tokens([EOS_TOKEN])  # last id, like GPT-2's 50256
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        model_max_length=model_max_length,
    )


def tokenize_missions(
    tokenizer: PreTrainedTokenizerBase, missions: Sequence[str], length: int, pad_id: int
) -> np.ndarray:
    """Missions -> ``(N, length)`` int64 ids: truncated, then right-padded with ``pad_id``.

    The reference padded to 64 but never truncated, so a long mission overflowed the model's 212 slots. Each distinct
    mission is tokenised once: within an episode (or a batch of envs) it rarely changes.
    """
    unique = sorted(set(missions))
    encoded = tokenizer(unique, add_special_tokens=False)["input_ids"] if unique else []
    table = np.full((len(unique), length), pad_id, np.int64)
    longest = 0
    for row, ids in zip(table, encoded, strict=True):
        longest = max(longest, len(ids))
        ids = ids[:length]
        row[: len(ids)] = ids
    if longest > length:
        logger.warning("A mission has %d tokens; truncated to %d.", longest, length)
    position = {mission: index for index, mission in enumerate(unique)}
    return table[[position[mission] for mission in missions]].reshape(len(missions), length)

"""Text completion and captioning for :class:`~jat_policy.modeling.JatModel`, decoding with its KV cache.

A mixin rather than transformers' ``GenerationMixin``: JAT's text path has its own forward (``_forward_text``,
with optional image patch tokens before the prompt) and needs only greedy / temperature / top-k decoding.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor

__all__ = ["TextGenerationMixin"]


class TextGenerationMixin:
    """Adds :meth:`generate` to a model with ``config``, ``device`` and ``_forward_text``."""

    config: Any
    device: torch.device
    _forward_text: Any

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor | None = None,
        pixel_values: Tensor | None = None,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        eos_token_id: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Text completion or captioning with the KV cache.

        The prompt is ``input_ids`` (unpadded, same length for the batch), optionally after the
        image's patch tokens (captioning). Rows that produced ``eos_token_id`` keep emitting it.

        Args:
            input_ids: ``(B, T)`` prompt ids; for captioning it may be ``None`` (start from the image).
            pixel_values: ``(B, 3, 224, 224)`` images for captioning.
            max_new_tokens: Number of tokens to add.
            do_sample: Sample from the softmax instead of greedy decoding.
            temperature: Softmax temperature when sampling.
            top_k: Keep only the ``top_k`` most likely tokens when sampling.
            eos_token_id: Stop token (default: the config's ``eos_token_id``).
            generator: Random generator for sampling.

        Returns:
            ``(B, T + new)`` token ids: the prompt followed by the generated tokens.
        """
        if input_ids is None and pixel_values is None:
            raise ValueError("generate() needs input_ids (a prompt) and/or pixel_values (an image to caption).")
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        batch = (input_ids if input_ids is not None else pixel_values).shape[0]
        prompt = input_ids if input_ids is not None else torch.zeros(batch, 0, dtype=torch.long, device=self.device)
        # Greedy/sampled decoding never needs a loss; each step extends the cache of the previous one.
        step_text = partial(
            self._forward_text, attention_mask=None, position_ids=None, return_loss=False, use_cache=True
        )
        out = step_text(input_ids, pixel_values, past=None)
        logits, cache = out.logits, out.cache
        tokens, finished = [], torch.zeros(batch, dtype=torch.bool, device=self.device)
        for _ in range(max_new_tokens):
            next_token = self._pick_token(logits[:, -1], do_sample, temperature, top_k, generator)  # (B,)
            if eos is not None:
                next_token = torch.where(finished, torch.full_like(next_token, eos), next_token)
                finished |= next_token == eos
            tokens.append(next_token)
            if bool(finished.all()):
                break
            step = step_text(next_token[:, None], None, past=cache)
            logits, cache = step.logits, step.cache
        return torch.cat([prompt, torch.stack(tokens, dim=1)], dim=1) if tokens else prompt

    @staticmethod
    def _pick_token(
        logits: Tensor, do_sample: bool, temperature: float, top_k: int | None, generator: torch.Generator | None
    ) -> Tensor:
        if not do_sample:
            return logits.argmax(dim=-1)
        logits = logits.float() / max(temperature, 1e-6)
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)

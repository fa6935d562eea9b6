"""``JatModel``: the JAT transformer, parameter-for-parameter compatible with the released checkpoint.

One GPT-Neo backbone (:mod:`jat_policy.backbone`); every RL timestep is two tokens, an observation embedding (with
the reward) and an action embedding, interleaved as ``[o_0, a_0, o_1, a_1, …]``. The hidden state at ``o_t``
predicts ``a_t``; the hidden state at ``a_t`` predicts ``o_{t+1}``. Text goes through the shared ``wte``;
captioning images through ViT patch embeddings placed before the text. Files on disk and the Hub are
:mod:`jat_policy.checkpoint`'s. Numerics that must match the reference are kept on purpose:

* continuous vectors are expanded *cyclically* to ``max_continuous_size``, not zero-padded;
* discrete heads score the full vocabulary (the caller slices to the action space);
* the backbone's attention quirks are listed in :mod:`jat_policy.backbone`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from jat_policy.backbone import JatTransformer, build_attention_bias
from jat_policy.cache import KVCache
from jat_policy.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    WTE_ALIASES,
    check_checkpoint_files,
    load_jat_config,
    read_model_weights,
    resolve_model_dir,
    write_checkpoint,
)
from jat_policy.configuration import JatConfig
from jat_policy.discrete_slots import encode_discrete_slots
from jat_policy.encoding import cyclic_expand_dim, pad_discrete_slots
from jat_policy.generation import TextGenerationMixin
from jat_policy.losses import compute_ce_loss, compute_mse_loss, reduce_per_step_loss
from jat_policy.vision import DualBatchReshapeWrapper, ImageDecoder, ImageEncoder, PatchEmbeddings

# Backbone, cache, checkpoint and loss names are re-exported: they were defined here before and are imported from here.
__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "WTE_ALIASES",
    "JatConfig",
    "JatModel",
    "JatOutput",
    "JatTransformer",
    "KVCache",
    "build_attention_bias",
    "check_checkpoint_files",
    "compute_ce_loss",
    "compute_mse_loss",
    "cyclic_expand_dim",
    "load_jat_config",
    "pad_discrete_slots",
    "reduce_per_step_loss",
    "resolve_model_dir",
    "write_checkpoint",
]


# --------------------------------------------------------------------------------------------------
# JatModel
# --------------------------------------------------------------------------------------------------


@dataclass
class JatOutput(ModelOutput):
    """Output of :class:`JatModel`.

    Attributes:
        loss: ``()`` total loss, ``observation_loss_coef·observation_loss + action_loss_coef·action_loss``
            for RL inputs, next-token CE for text.
        observation_loss: ``()`` next-observation MSE (RL only; 0 for discrete observations and κ = 0).
        action_loss: ``()`` action MSE (continuous) or CE (discrete) (RL only).
        pred_observations: ``(B, L, n)`` continuous or ``(B, L, 4, 84, 84)`` image predictions of the
            *next* observation from each action token (``None`` for discrete observations or κ = 0).
        pred_actions: ``(B, L, k)`` continuous actions, or ``(B, L, vocab)`` logits for discrete actions.
        logits: ``(B, T, vocab)`` token logits for text / captioning inputs.
        cache: :class:`KVCache` when ``use_cache=True`` (transformers >= 5.24 names this field ``cache``;
            ``past_key_values`` is kept as a read-only alias).
        last_hidden_state: ``(B, T, H)`` final hidden states (all tokens).
    """

    loss: Tensor | None = None
    observation_loss: Tensor | None = None
    action_loss: Tensor | None = None
    pred_observations: Tensor | None = None
    pred_actions: Tensor | None = None
    logits: Tensor | None = None
    cache: KVCache | None = None
    last_hidden_state: Tensor | None = None

    @property
    def past_key_values(self) -> KVCache | None:
        """The cache under its pre-5.24 name (the reference's, and transformers < 5.24's)."""
        return self.cache


class JatModel(TextGenerationMixin, PreTrainedModel):
    """The JAT model: modality encoders, a GPT-Neo backbone, and decoders.

    Example:
        >>> import torch
        >>> from jat_policy import JatConfig, JatModel
        >>> model = JatModel(JatConfig.from_preset("jat-tiny"))
        >>> out = model(
        ...     continuous_observations=torch.randn(2, 5, 39),
        ...     continuous_actions=torch.randn(2, 5, 4),
        ...     rewards=torch.zeros(2, 5),
        ... )
        >>> out.pred_actions.shape, out.loss.shape
        (torch.Size([2, 5, 4]), torch.Size([]))
    """

    config_class = JatConfig
    base_model_prefix = "jat"
    main_input_name = "input_ids"
    _no_split_modules = ["GPTNeoBlock"]

    def __init__(self, config: JatConfig) -> None:
        super().__init__(config)
        hidden, vocab = config.hidden_size, config.vocab_size
        squeeze = config.discrete_slot_size or hidden // 50  # bottleneck width per discrete slot
        self.transformer = JatTransformer(config)
        self.vit_encoder = PatchEmbeddings(config)
        self.single_discrete_encoder = self.transformer.wte  # shared: actions, discrete obs, text
        self.continuous_encoder = nn.Linear(config.max_continuous_size, hidden)
        self.multi_discrete_encoder = nn.Sequential(
            self.single_discrete_encoder,  # (B, L, X, H)
            nn.Linear(hidden, squeeze),  # (B, L, X, H // 50)
            nn.ReLU(),
            nn.Flatten(start_dim=2),  # (B, L, X · (H // 50))
            nn.Linear(config.max_discrete_value * squeeze, hidden - 1),  # (B, L, H - 1); the reward is the last
        )
        self.image_encoder = DualBatchReshapeWrapper(ImageEncoder(hidden))
        self.single_discrete_decoder = nn.Linear(hidden, vocab, bias=False)
        self.continuous_decoder = nn.Linear(hidden, config.max_continuous_size)
        # Kept for checkpoint compatibility; the reference never uses it (discrete-observation
        # prediction is disabled there as too expensive).
        self.multi_discrete_decoder = nn.Sequential(
            nn.Linear(hidden, config.max_discrete_value * squeeze),
            nn.Unflatten(dim=2, unflattened_size=(config.max_discrete_value, squeeze)),
            nn.ReLU(),
            nn.Linear(squeeze, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 8, bias=False),
        )
        self.image_decoder = DualBatchReshapeWrapper(ImageDecoder(hidden))
        self.post_init()

    # ------------------------------------------------------------------ init / tying
    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # GPT-Neo's init: N(0, 0.02) linears and embeddings, zero biases, unit LayerNorms; convs keep torch's.
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.normal_(mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()

    def get_input_embeddings(self) -> nn.Embedding:
        """The shared token embedding ``wte``."""
        return self.transformer.wte

    def get_output_embeddings(self) -> None:
        """None: JAT's 50257-way head is not tied to ``wte``."""
        return None

    # ------------------------------------------------------------------ embeddings
    def embed_observations(
        self,
        rewards: Tensor,
        continuous_observations: Tensor | None = None,
        discrete_observations: Tensor | None = None,
        image_observations: Tensor | None = None,
    ) -> Tensor:
        """Embeds observations with their (already shifted) rewards.

        Args:
            rewards: ``(B, L)`` reward that led to each observation.
            continuous_observations: ``(B, L, n)`` raw vectors (the reward is appended here).
            discrete_observations: ``(B, L, X)`` ints, ``X <= max_discrete_value`` (zero-padded to it by
                :func:`pad_discrete_slots`).
            image_observations: ``(B, L, 4, 84, 84)`` floats in [-1, 1] (rewards are ignored).

        Returns:
            ``(B, L, H)`` observation token embeddings.
        """
        if continuous_observations is not None:
            x = torch.cat((continuous_observations, rewards.unsqueeze(-1).to(continuous_observations.dtype)), dim=-1)
            x = cyclic_expand_dim(x, self.config.max_continuous_size)  # (B, L, 377)
            return self.continuous_encoder(x)
        if discrete_observations is not None:
            self._check_discrete_observations(discrete_observations)
            x = pad_discrete_slots(discrete_observations, self.config.max_discrete_value)  # (B, L, slots)
            x = self._encode_discrete_slots(x)  # (B, L, H - 1)
            return torch.cat((x, rewards.unsqueeze(-1).to(x.dtype)), dim=-1)  # (B, L, H)
        if image_observations is not None:
            if image_observations.dim() != 5 or tuple(image_observations.shape[2:]) != (4, 84, 84):
                raise ValueError(
                    f"image_observations must be (B, L, 4, 84, 84) floats in [-1, 1], got "
                    f"{tuple(image_observations.shape)}; channel-last (84, 84, 4) frames go through JatProcessor "
                    "first."
                )
            return self.image_encoder(image_observations)
        raise ValueError("Missing observations: pass continuous_, discrete_ or image_observations.")

    def _encode_discrete_slots(self, ids: Tensor) -> Tensor:
        """``multi_discrete_encoder`` on ``(B, L, X)`` ints, returning ``(B, L, H - 1)``.

        Embedding then the per-slot linear equals gathering rows of the projected table ``linear(wte)``
        (``(vocab, S)``). When the batch has more slot values than the vocabulary has rows (training), the
        table is projected once and :func:`~jat_policy.discrete_slots.encode_discrete_slots` computes each
        distinct (slot, value) product once, instead of materialising a ``(B, L, X, H)`` tensor and running
        the linear (and its backward) on every slot.
        """
        embed, squeeze, act, flatten, project = self.multi_discrete_encoder
        if ids.numel() > embed.num_embeddings:
            return encode_discrete_slots(ids, squeeze(embed.weight), project.weight, project.bias)  # (B, L, H - 1)
        return project(flatten(act(squeeze(embed(ids)))))

    def embed_actions(
        self, continuous_actions: Tensor | None = None, discrete_actions: Tensor | None = None
    ) -> Tensor:
        """Embeds actions: continuous through the shared continuous encoder, discrete through ``wte``.

        Args:
            continuous_actions: ``(B, L, k)``.
            discrete_actions: ``(B, L)`` ints.

        Returns:
            ``(B, L, H)`` action token embeddings.
        """
        if continuous_actions is not None:
            return self.continuous_encoder(cyclic_expand_dim(continuous_actions, self.config.max_continuous_size))
        if discrete_actions is not None:
            if discrete_actions.numel() and int(discrete_actions.max()) >= self.config.vocab_size:
                raise ValueError(
                    f"Discrete action {int(discrete_actions.max())} is outside the model's vocabulary "
                    f"({self.config.vocab_size}): this checkpoint cannot represent that action space."
                )
            return self.single_discrete_encoder(discrete_actions)
        raise ValueError("Missing actions: pass continuous_actions or discrete_actions.")

    def _check_discrete_observations(self, x: Tensor) -> None:
        slots = self.config.max_discrete_value
        if x.shape[-1] > slots:
            raise ValueError(
                f"discrete_observations must have at most {slots} slots (BabyAI: 148 ints + 64 mission tokens), "
                f"got {x.shape[-1]}; build them with JatProcessor(discrete_observations=..., text_observations=...)."
            )
        if x.numel() and (int(x.max()) >= self.config.vocab_size or int(x.min()) < 0):
            raise ValueError(
                f"discrete_observations values must lie in [0, {self.config.vocab_size}), got "
                f"[{int(x.min())}, {int(x.max())}]: a tokenizer larger than the model's vocabulary, or an env whose "
                "discrete observations go past it (embed them with a larger vocab_size, e.g. jat-small's 50257)?"
            )

    def decode_actions(self, hidden: Tensor, action_size: int | None) -> Tensor:
        """Decodes action-predicting hidden states (those at observation tokens).

        Args:
            hidden: ``(B, L, H)``.
            action_size: Size ``k`` of a continuous action, or ``None`` for discrete (full-vocabulary logits).

        Returns:
            ``(B, L, k)`` continuous actions or ``(B, L, vocab)`` logits.
        """
        if action_size is None:
            return self.single_discrete_decoder(hidden)
        return self.continuous_decoder(hidden)[..., :action_size]

    def interleave(self, obs_embeds: Tensor, act_embeds: Tensor) -> Tensor:
        """``(B, L, H)`` × 2 → ``(B, 2L, H)`` ordered ``[o_0, a_0, o_1, a_1, …]``."""
        batch, length, hidden = obs_embeds.shape
        return torch.stack((obs_embeds, act_embeds), dim=2).view(batch, 2 * length, hidden)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: Tensor | None = None,
        pixel_values: Tensor | None = None,
        continuous_observations: Tensor | None = None,
        discrete_observations: Tensor | None = None,
        image_observations: Tensor | None = None,
        continuous_actions: Tensor | None = None,
        discrete_actions: Tensor | None = None,
        rewards: Tensor | None = None,
        attention_mask: Tensor | None = None,
        loss_weight: Tensor | None = None,
        cache: KVCache | None = None,
        position_ids: Tensor | None = None,
        return_loss: bool = True,
        use_cache: bool = False,
        past_key_values: KVCache | None = None,
        **kwargs: Any,
    ) -> JatOutput:
        """Runs the model on text / captioning or on RL episodes.

        Args:
            input_ids: ``(B, T)`` text token ids.
            pixel_values: ``(B, 3, 224, 224)`` captioning images (their 196 patches precede the text).
            continuous_observations: ``(B, L, n)``.
            discrete_observations: ``(B, L, X <= max_discrete_value)``, zero-padded by the model.
            image_observations: ``(B, L, 4, 84, 84)`` in [-1, 1].
            continuous_actions: ``(B, L, k)``.
            discrete_actions: ``(B, L)``.
            rewards: ``(B, L)`` reward that led to each observation (0 at t = 0).
            attention_mask: ``(B, L)`` for RL (per timestep) or ``(B, T)`` for text; 1 = real.
            loss_weight: ``(B, L)`` per-timestep loss weights (RL only).
            cache: A :class:`KVCache` of earlier tokens.
            position_ids: Explicit token positions ``(B, tokens)``.
            return_loss: Compute the losses.
            use_cache: Return the extended cache.
            past_key_values: The same as ``cache``, under the reference's (and transformers < 5.24's) name.
            **kwargs: Accepted and ignored for compatibility (``token_type_ids``, ``return_dict``, …).

        Returns:
            A :class:`JatOutput`.
        """
        if past_key_values is not None:
            if cache is not None:
                raise ValueError("Pass the KV cache once: cache= or past_key_values= (its older name), not both.")
            cache = past_key_values
        if input_ids is not None or pixel_values is not None:
            return self._forward_text(
                input_ids, pixel_values, attention_mask, cache, position_ids, return_loss, use_cache
            )
        rl = dict(
            continuous_observations=continuous_observations,
            discrete_observations=discrete_observations,
            image_observations=image_observations,
            continuous_actions=continuous_actions,
            discrete_actions=discrete_actions,
        )
        if all(v is None for v in rl.values()):
            raise ValueError("No input: pass input_ids / pixel_values (text) or observations and actions (RL).")
        return self._forward_rl(
            rewards, attention_mask, loss_weight, cache, position_ids, return_loss, use_cache, **rl
        )

    def _forward_rl(
        self,
        rewards: Tensor | None,
        attention_mask: Tensor | None,
        loss_weight: Tensor | None,
        past: KVCache | None,
        position_ids: Tensor | None,
        return_loss: bool,
        use_cache: bool,
        continuous_observations: Tensor | None,
        discrete_observations: Tensor | None,
        image_observations: Tensor | None,
        continuous_actions: Tensor | None,
        discrete_actions: Tensor | None,
    ) -> JatOutput:
        observations = continuous_observations, discrete_observations, image_observations
        obs = next((o for o in observations if o is not None), None)
        if obs is None:
            raise ValueError("Missing observations: RL inputs need continuous_, discrete_ or image_observations.")
        if rewards is None:
            rewards = torch.zeros(obs.shape[:2], dtype=torch.float32, device=obs.device)
        obs_embeds = self.embed_observations(rewards, *observations)  # (B, L, H)
        act_embeds = self.embed_actions(continuous_actions, discrete_actions)  # (B, L, H)
        if act_embeds.shape[:2] != obs_embeds.shape[:2]:
            raise ValueError(
                f"Observations cover {tuple(obs_embeds.shape[:2])} (batch, steps) but actions "
                f"{tuple(act_embeds.shape[:2])}: every timestep needs one observation and one action."
            )
        token_mask = attention_mask.repeat_interleave(2, dim=1) if attention_mask is not None else None  # (B, 2L)
        hidden, cache = self.transformer(
            self.interleave(obs_embeds, act_embeds), token_mask, position_ids, past, use_cache
        )
        obs_hidden, act_hidden = hidden[:, ::2], hidden[:, 1::2]  # (B, L, H) each
        action_size = continuous_actions.shape[-1] if continuous_actions is not None else None
        pred_actions = self.decode_actions(
            obs_hidden, None if action_size is None else self.config.max_continuous_size
        )
        out = JatOutput(cache=cache, last_hidden_state=hidden)
        out.pred_observations, observation_loss = self._predict_observations(
            act_hidden, rewards, continuous_observations, image_observations, attention_mask, loss_weight, return_loss
        )
        if return_loss:
            if action_size is None:
                action_loss = compute_ce_loss(pred_actions, discrete_actions, attention_mask, loss_weight)
            else:
                target = cyclic_expand_dim(continuous_actions, self.config.max_continuous_size)
                action_loss = compute_mse_loss(pred_actions, target, attention_mask, loss_weight)
            out.observation_loss, out.action_loss = observation_loss, action_loss
            out.loss = (
                self.config.observation_loss_coef * observation_loss + self.config.action_loss_coef * action_loss
            )
        out.pred_actions = pred_actions if action_size is None else pred_actions[..., :action_size]
        return out

    def _predict_observations(
        self,
        act_hidden: Tensor,
        rewards: Tensor,
        continuous_observations: Tensor | None,
        image_observations: Tensor | None,
        attention_mask: Tensor | None,
        loss_weight: Tensor | None,
        return_loss: bool,
    ) -> tuple[Tensor | None, Tensor]:
        zero = act_hidden.new_zeros(())
        # κ = 0 skips the decoders entirely (the image decoder is the most memory-hungry module);
        # discrete-observation prediction is disabled, as in the reference.
        if self.config.observation_loss_coef == 0 or (continuous_observations is None and image_observations is None):
            return None, zero
        mask = attention_mask[:, 1:] if attention_mask is not None else None
        weights = loss_weight[:, 1:] if loss_weight is not None else None
        if continuous_observations is not None:
            size = continuous_observations.shape[-1]
            pred = self.continuous_decoder(act_hidden)  # (B, L, 377): obs ‖ reward, cyclically expanded
            loss = zero
            if return_loss:
                target = torch.cat((continuous_observations, rewards.unsqueeze(-1)), dim=-1)
                target = cyclic_expand_dim(target, self.config.max_continuous_size)
                loss = compute_mse_loss(pred[:, :-1], target[:, 1:], mask, weights)
            return pred[..., :size], loss
        pred = self.image_decoder(act_hidden)  # (B, L, 4, 84, 84)
        loss = compute_mse_loss(pred[:, :-1], image_observations[:, 1:], mask, weights) if return_loss else zero
        return pred, loss

    def _embed_text(
        self, input_ids: Tensor | None, pixel_values: Tensor | None, attention_mask: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        parts = []
        if pixel_values is not None:
            parts.append(self.vit_encoder(pixel_values))  # (B, P, H)
        if input_ids is not None:
            if input_ids.numel() and int(input_ids.max()) >= self.config.vocab_size:
                raise ValueError(
                    f"Token id {int(input_ids.max())} is outside the model's vocabulary ({self.config.vocab_size}): "
                    "was the text tokenised with another tokenizer than the checkpoint's?"
                )
            parts.append(self.transformer.wte(input_ids))  # (B, T, H)
        embeds = torch.cat(parts, dim=1)  # (B, P + T, H)
        mask = attention_mask
        if mask is not None and pixel_values is not None:
            patch_mask = mask.new_ones(mask.shape[0], embeds.shape[1] - mask.shape[1])  # image patches are real
            mask = torch.cat((patch_mask, mask), dim=1)  # (B, P + T)
        return embeds, mask

    def _forward_text(
        self,
        input_ids: Tensor | None,
        pixel_values: Tensor | None,
        attention_mask: Tensor | None,
        past: KVCache | None,
        position_ids: Tensor | None,
        return_loss: bool,
        use_cache: bool,
    ) -> JatOutput:
        embeds, mask = self._embed_text(input_ids, pixel_values, attention_mask)
        hidden, cache = self.transformer(embeds, mask, position_ids, past, use_cache)
        logits = self.single_discrete_decoder(hidden)  # (B, P + T, vocab)
        out = JatOutput(logits=logits, cache=cache, last_hidden_state=hidden)
        if return_loss and input_ids is not None and input_ids.shape[1] > 1:
            n = input_ids.shape[1]
            shift_logits = logits[:, -n:-1]  # (B, T - 1, vocab): token t predicts t + 1
            labels = input_ids[:, 1:]
            label_mask = attention_mask[:, 1:] if attention_mask is not None else torch.ones_like(labels)
            keep = label_mask.bool()
            out.loss = F.cross_entropy(shift_logits[keep].float(), labels[keep])
        return out

    # ------------------------------------------------------------------ serialisation
    def canonical_state_dict(self) -> dict[str, Tensor]:
        """State dict without the ``wte`` aliases (each tensor once), as written to ``model.safetensors``."""
        return {k: v for k, v in self.state_dict().items() if k not in WTE_ALIASES[1:]}

    def save_pretrained(  # type: ignore[override]
        self, save_directory: str | os.PathLike, state_dict: dict[str, Tensor] | None = None, **kwargs: Any
    ) -> None:
        """Writes ``config.json`` and ``model.safetensors`` as one unit (see :func:`write_checkpoint`).

        Args:
            save_directory: Target directory (created; existing model files are replaced).
            state_dict: Weights to write instead of the model's own (``transformers.Trainer`` passes it).
            **kwargs: Accepted for ``transformers.Trainer`` compatibility and ignored (always safetensors).
        """
        write_checkpoint(save_directory, self.checkpoint_weights(state_dict), self.write_config)

    def checkpoint_weights(self, state_dict: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The tensors written to ``model.safetensors``: each once (no ``wte`` aliases), contiguous, on the CPU."""
        weights = state_dict if state_dict is not None else self.canonical_state_dict()
        return {k: v.detach().to("cpu").contiguous() for k, v in weights.items() if k not in WTE_ALIASES[1:]}

    def write_config(self, directory: Path) -> None:
        """Writes ``config.json`` into ``directory``."""
        self.config.architectures = [type(self).__name__]
        self.config.to_json_file(str(directory / CONFIG_NAME))

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        **config_overrides: Any,
    ) -> JatModel:
        """Loads a local directory or a Hub repo (e.g. ``jat-project/jat``) holding config.json + model.safetensors.

        Safetensors only (never pickle), no ``trust_remote_code``. The shared token embedding may be
        stored under any of its names (``transformer.wte``, ``single_discrete_encoder``,
        ``multi_discrete_encoder.0``).

        Args:
            pretrained_model_name_or_path: Local directory or Hub repo id.
            revision: Hub revision.
            device: Device to move the model to.
            dtype: dtype to cast the weights to.
            **config_overrides: Config fields to override (e.g. ``observation_loss_coef=0.0``).

        Returns:
            The model in eval mode.
        """
        directory = resolve_model_dir(pretrained_model_name_or_path, revision)
        check_checkpoint_files(directory)
        config = load_jat_config(directory, **config_overrides)
        model = cls(config)
        model.load_jat_weights(directory / WEIGHTS_NAME)
        model.name_or_path = str(directory)  # where it came from (JatPolicy checks for the checkpoint's tokenizer)
        if dtype is not None:
            model = model.to(dtype)
        if device is not None:
            model = model.to(device)
        return model.eval()

    def load_jat_weights(self, path: str | os.PathLike) -> None:
        """Loads a ``model.safetensors`` file with strict key and shape checks (:func:`read_model_weights`).

        Args:
            path: The safetensors file.
        """
        self.load_state_dict(read_model_weights(Path(path), self.state_dict()), strict=True)

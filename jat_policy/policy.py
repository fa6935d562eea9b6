"""``JatPolicy``: the JAT agent behind stable-baselines3's ``predict`` contract, with a rolling KV-cached context.

``predict(observation, state=None, episode_start=None, deterministic=False) -> (actions, state)`` works like an
SB3 policy's: one observation or a batch (one row per env), actions shaped and typed as SB3 returns them, the
per-env context carried in an explicit :class:`JatPolicyState` (nothing is stored on the policy), and
``episode_start`` clearing the context of the envs that start a new episode. It therefore runs unchanged in
``stable_baselines3.common.evaluation.evaluate_policy`` over ``DummyVecEnv``/``SubprocVecEnv`` of wrapped envs.

Rolling context (DESIGN.md, decision 3). Every env advances in the same forward pass, and each step feeds only
the two new tokens ``[a_{t-1}, o_t]`` against the KV cache; the action for ``t`` is read at ``o_t``. The
context window ``W`` is counted in timesteps: at step ``t`` of an episode the model sees exactly the timesteps
``s(t) .. t``, with positions starting at 0, where::

    s(t) = 0                             if t < W
    s(t) = (t // (W / 2) - 1) * (W / 2)  otherwise

so when the window is full the oldest half is dropped and the rest re-encoded from position 0 (one extra
forward over ``W + 1`` tokens every ``W / 2`` steps). Positions are never reused and the memory per env is
bounded by ``2 W`` tokens, however long the episode. The reference's ``get_next_action`` instead ran four tokens
per step for one env and let cached positions collapse once its cache was full.

Inputs are validated in one place before anything reaches the model (:mod:`jat_policy.policy_inputs`): a NaN, inf or
value beyond ``MAX_INPUT_MAGNITUDE`` would otherwise stay in the env's KV cache and turn every later action of the
episode into NaN. States carry their policy's fingerprint, so a state is never read by a policy it does not fit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor

from jat_policy.cache import KVCache, StoredCache, invalidate_rows, reserve, to_store, trim, write_rows
from jat_policy.checkpoint import (
    POLICY_CONFIG_NAME,
    check_checkpoint_files,
    read_policy_config,
    resolve_model_dir,
    saved_processor,
    space_from_json,
    space_to_json,
    write_checkpoint,
    write_policy_config,
)
from jat_policy.modeling import JatModel
from jat_policy.policy_inputs import (
    INVALID_VALUE_MODES,
    MAX_INPUT_MAGNITUDE,
    batch_info,
    check_action_space,
    check_observation_space,
    check_values,
    decode_missions,
    episode_starts,
)
from jat_policy.policy_state import JatPolicyState, context_start, context_starts
from jat_policy.processing import JatProcessor, scale_pixels

logger = logging.getLogger(__name__)

__all__ = ["MAX_INPUT_MAGNITUDE", "JatPolicy", "JatPolicyState", "context_start", "space_from_json", "space_to_json"]

ATARI_CONTEXT_WINDOW = 32  # timesteps; training windows were 32 steps for Atari (images) ...
DEFAULT_CONTEXT_WINDOW = 256  # ... and 256 steps for every other domain
# Config fields that shape the KV cache or the meaning of its tokens: a state is tied to these, not to metadata
# (name_or_path, transformers_version, loss coefficients) that differs between a saved and a reloaded policy.
_FINGERPRINT_CONFIG_KEYS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "num_layers",
    "num_heads",
    "attention_layers",
    "window_size",
    "max_position_embeddings",
    "intermediate_size",
    "activation_function",
    "layer_norm_epsilon",
    "max_continuous_size",
    "max_discrete_value",
    "discrete_slot_size",
    "image_size",
    "patch_size",
    "num_channels",
)
_GYM_TUPLE_MESSAGE = (
    "You passed a tuple (observation, info) to predict() instead of the observation dict. You are probably mixing "
    "Gym API with SB3 VecEnv API, i.e. mixing the Gymnasium API with SB3's VecEnv API: `obs, info = env.reset()` "
    "(Gymnasium) vs `obs = vec_env.reset()` (SB3 VecEnv). Pass `obs` only."
)  # contains SB3's own wording ("mixing Gym API"), which code written against SB3 matches


def resolve_device(device: str | torch.device | None) -> torch.device | None:
    """``"auto"`` as in SB3 (CUDA when available, else the CPU); any other value as torch reads it."""
    if device is None:
        return None
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"Unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N' ({err}).") from None


def _describe_space(space: spaces.Space) -> Any:
    try:
        return space_to_json(space)
    except ValueError:  # a space policy.json cannot hold (e.g. an unused Tuple entry): its repr still identifies it
        return repr(space)


# --------------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------------


class JatPolicy:
    """A JAT model as an SB3-style policy: ``predict(obs, state, episode_start, deterministic)``.

    Args:
        model: The :class:`~jat_policy.modeling.JatModel` (put in eval mode).
        observation_space: The wrapped env's observation space: a ``Dict`` JAT step dict (see
            :func:`jat_policy.wrappers.wrap_env`) with one of ``continuous_observation``, ``discrete_observation``
            (with ``text_observation``, a ``Text`` or UTF-8 bytes) or ``image_observation``, plus ``reward``.
        action_space: The env's ``Discrete(n)`` or 1-D ``Box(k,)`` action space.
        processor: A :class:`~jat_policy.processing.JatProcessor`; it tokenises missions (discrete observations
            with text). Defaults to the offline default tokenizer when needed.
        context_window: ``W`` in timesteps (even, at most ``max_position_embeddings // 2``). Default: 32 for
            image (Atari) observations, 256 otherwise, capped by the model's positions, as in training.
        device: Device to move the model to: ``"auto"`` (CUDA when available, as SB3), ``"cpu"``, ``"cuda:0"``...
            (default: leave it where it is).
        invalid_values: What ``predict`` does with observation or reward entries that are NaN, +-inf or larger
            in magnitude than ``MAX_INPUT_MAGNITUDE`` (1e15; a float32 model overflows from about 6e19):
            ``"raise"`` (default) raises a ``ValueError`` naming the key and the env, before anything reaches the
            model or the state; ``"zero"`` replaces them by 0 and warns. Settable later as an attribute (e.g.
            after :meth:`from_pretrained`).

    Attributes:
        fingerprint: A 16-hex-digit digest of the model architecture, weight dtype, spaces and context window,
            stored in every state ``predict`` returns; a state with another fingerprint is refused.

    Raises:
        ValueError: For observation or action spaces the checkpoint cannot represent, a bad context window or an
            unknown ``invalid_values``.

    Example:
        >>> import gymnasium as gym
        >>> from jat_policy import JatConfig, JatModel, JatPolicy, wrap_env
        >>> env = wrap_env(gym.make("CartPole-v1"))
        >>> policy = JatPolicy(JatModel(JatConfig.from_preset("jat-tiny")), env.observation_space, env.action_space)
        >>> obs, _ = env.reset(seed=0)
        >>> action, state = policy.predict(obs, deterministic=True)
        >>> action.shape, action.dtype, state.steps.tolist()
        ((), dtype('int64'), [1])
    """

    def __init__(
        self,
        model: JatModel,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        processor: Any = None,
        context_window: int | None = None,
        device: str | torch.device | None = None,
        invalid_values: str = "raise",
    ) -> None:
        if not isinstance(model, JatModel):
            raise TypeError(f"model must be a JatModel, got {type(model).__name__}.")
        device = resolve_device(device)
        self.model = model.eval() if device is None else model.to(device).eval()
        self.config = model.config
        self.observation_space = observation_space
        self.action_space = action_space
        self.text_key = (
            "text_observation"
            if isinstance(observation_space, spaces.Dict) and ("text_observation" in observation_space.spaces)
            else None
        )
        self.processor = processor if processor is not None else self._default_processor()
        mission_slots = self.processor.mission_length if self.text_key is not None else 0
        self.observation_key = check_observation_space(observation_space, model.config, mission_slots)
        check_action_space(action_space, model.config)
        self.context_window = self._resolve_context_window(context_window)
        self.invalid_values = invalid_values
        self.fingerprint = self._fingerprint()
        if isinstance(action_space, spaces.Box):
            self._low = torch.as_tensor(action_space.low, dtype=torch.float32, device=self.device)
            self._high = torch.as_tensor(action_space.high, dtype=torch.float32, device=self.device)

    def __repr__(self) -> str:
        return (
            f"JatPolicy(observation={self.observation_key}, action_space={self.action_space}, "
            f"context_window={self.context_window}, device={self.device})"
        )

    @property
    def invalid_values(self) -> str:
        """``"raise"`` or ``"zero"``: what ``predict`` does with NaN, inf or ``|x| > MAX_INPUT_MAGNITUDE`` inputs."""
        return self._invalid_values

    @invalid_values.setter
    def invalid_values(self, mode: str) -> None:
        if mode not in INVALID_VALUE_MODES:
            raise ValueError(f"invalid_values must be one of {INVALID_VALUE_MODES}, got {mode!r}.")
        self._invalid_values = mode

    @property
    def device(self) -> torch.device:
        """Device of the model."""
        return next(self.model.parameters()).device

    def _param_info(self) -> tuple[torch.device, torch.dtype]:
        param = next(self.model.parameters())
        return param.device, param.dtype

    # ------------------------------------------------------------------ validation
    def _default_processor(self) -> Any:
        if self.text_key is None:
            return None
        # The default tokenizer can only be the wrong one for a model loaded from a checkpoint that ships its own:
        # a fresh preset model (the README's SB3 snippet) has no other to be right about.
        source = getattr(self.model, "name_or_path", None)
        if source and Path(source).is_dir() and saved_processor(Path(source), read_policy_config(Path(source))):
            warnings.warn(
                f"No processor given, but {source} ships its own tokenizer: missions are tokenised with the "
                f"default offline tokenizer, which may differ. Pass processor=JatProcessor.from_pretrained({source!r})"
                " or load the policy with JatPolicy.from_pretrained, which uses it.",
                stacklevel=3,
            )
        return JatProcessor.from_config(self.model.config)

    def _resolve_context_window(self, context_window: int | None) -> int:
        limit = self.model.config.max_position_embeddings // 2
        if context_window is None:
            # A model sees at evaluation the context length it was trained on: positions past the training
            # window were never fitted (the trainer records its windows in the config).
            image = self.observation_key == "image_observation"
            default = ATARI_CONTEXT_WINDOW if image else DEFAULT_CONTEXT_WINDOW
            trained = (self.model.config.training_windows or {}).get("image" if image else "default")
            context_window = min(int(trained or default), limit - limit % 2)
            context_window -= context_window % 2
        if not isinstance(context_window, int | np.integer) or context_window < 2 or context_window % 2:
            raise ValueError(f"context_window must be an even int >= 2 (timesteps), got {context_window!r}.")
        if context_window > limit:
            raise ValueError(
                f"context_window={context_window} timesteps needs {2 * context_window} positions, but the model has "
                f"max_position_embeddings={self.model.config.max_position_embeddings}: use at most {limit}."
            )
        return int(context_window)

    def _fingerprint(self) -> str:
        """A short digest of what a state depends on: architecture, weight dtype, spaces and context window.

        Weights are left out on purpose: a policy loaded from the same checkpoint with the same spaces accepts the
        state (so would one with other weights of the same architecture, reading the context with its own weights).
        """
        config = self.model.config.to_dict()
        described = {
            "model": {key: config.get(key) for key in _FINGERPRINT_CONFIG_KEYS},
            "dtype": str(self._param_info()[1]),
            "observation_space": _describe_space(self.observation_space),
            "action_space": _describe_space(self.action_space),
            "context_window": self.context_window,
        }
        text = json.dumps(described, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        observation: dict[str, Any],
        state: JatPolicyState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, JatPolicyState]:
        """Actions for one observation or a batch, as stable-baselines3's ``BasePolicy.predict``.

        Input contract: every observation and reward entry must be a finite number with ``|x| <=
        MAX_INPUT_MAGNITUDE`` (1e15). An invalid one raises a ``ValueError`` naming the key and the env before
        anything is fed to the model, so the given state stays valid (``invalid_values="zero"`` replaces them by 0
        instead). A batch of 0 envs returns empty actions (``(0,)`` or ``(0, k)``) and a 0-env state. A state
        only fits the policy that returned it, or one with the same architecture, weight dtype, spaces and context
        window (e.g. the same checkpoint saved and reloaded); any other policy's state is a ``ValueError``.

        Args:
            observation: A step dict of one env (entries shaped as the observation space; text a ``str``) or of
                ``N`` envs (a leading env dimension; text a list/array of ``N`` strings or ``(N, 256)`` bytes).
            state: The state returned by the previous call, or ``None`` to start every env afresh.
            episode_start: ``(N,)`` bools: envs whose observation starts a new episode (their context is cleared;
                the other envs keep theirs). ``None``: no env starts one (unless ``state`` is ``None``). Its length
                must be ``N`` even when ``state`` is ``None``.
            deterministic: Discrete actions: argmax instead of sampling from the softmax. Continuous actions
                are deterministic either way.

        Returns:
            ``(actions, state)``: actions ``(N,)`` int64 for ``Discrete`` or ``(N, k)`` in the ``Box``'s dtype,
            clipped to its bounds (without the leading ``N`` for a single observation), and the new state (the
            given one is not modified).

        Raises:
            ValueError: For a Gymnasium ``(obs, info)`` tuple, observations that do not match the observation
                space, NaN/inf/too large values, a state from another policy, or a state / ``episode_start`` for
                another number of envs.
            TypeError: For a state that is not a :class:`JatPolicyState` or non-numeric observation entries.
        """
        if isinstance(observation, tuple) and len(observation) == 2 and isinstance(observation[1], dict):
            raise ValueError(_GYM_TUPLE_MESSAGE)
        if not isinstance(observation, dict):
            raise ValueError(
                f"JatPolicy.predict expects the JAT step dict (keys {list(self.observation_space.spaces)}), got "
                f"{type(observation).__name__}. Wrap the env with jat_policy.wrap_env (or use jat_policy.make_env)."
            )
        vectorized, n_envs = batch_info(observation, self.observation_space)
        keys = [self.observation_key] + (["reward"] if "reward" in self.observation_space.spaces else [])
        observation = check_values(observation, keys, vectorized, self.invalid_values)
        state = self._start_state(state, n_envs, episode_start)
        if n_envs == 0:
            return self._no_actions(), state
        with torch.no_grad():
            obs_embeds = self._embed_observations(observation, vectorized)  # (N, H)
            hidden, state = self._advance(state, obs_embeds)  # (N, H)
            indices, actions = self._select_actions(hidden, deterministic)
        state = replace(state, last_actions=indices, policy_fingerprint=self.fingerprint)
        return (actions if vectorized else actions.squeeze(axis=0)), state  # SB3 drops the env axis

    def _no_actions(self) -> np.ndarray:
        """The actions of a batch of 0 envs: ``(0,)`` int64 or ``(0, k)`` in the Box's dtype."""
        if isinstance(self.action_space, spaces.Discrete):
            return np.zeros(0, dtype=np.int64)
        return np.zeros((0, *self.action_space.shape), dtype=self.action_space.dtype)

    def _start_state(self, state: JatPolicyState | None, n_envs: int, episode_start: Any) -> JatPolicyState:
        starts = episode_starts(episode_start, n_envs)
        if state is None:
            return JatPolicyState.initial(n_envs, self.context_window, self.fingerprint)
        self._check_state(state, n_envs)
        if starts is None or not starts.any():
            return state
        return replace(state, steps=np.where(starts, 0, state.steps))

    def _check_state(self, state: Any, n_envs: int) -> None:
        if not isinstance(state, JatPolicyState):
            raise TypeError(
                f"state must be a JatPolicyState returned by JatPolicy.predict (or None), got {type(state).__name__}."
            )
        if state.n_envs != n_envs:
            raise ValueError(
                f"The state holds {state.n_envs} envs but the observation {n_envs}; pass state=None to start over "
                "when the number of envs changes."
            )
        if state.context_window != self.context_window:
            raise ValueError(
                f"The state was built with context_window={state.context_window}, the policy uses "
                f"{self.context_window}; pass state=None to start over."
            )
        if state.policy_fingerprint not in (None, self.fingerprint):
            raise ValueError(
                f"The state comes from another policy (fingerprint {state.policy_fingerprint}, this policy's is "
                f"{self.fingerprint}): a state only fits a policy with the same model architecture, weight dtype, "
                "observation and action spaces and context window. Pass state=None to start fresh."
            )

    def _embed_observations(self, observation: dict[str, Any], vectorized: bool) -> Tensor:
        """``(N, H)`` observation embeddings, with the previous reward."""
        model = self.model
        device, dtype = self._param_info()

        def batch(key: str) -> np.ndarray:
            value = np.asarray(observation[key])
            return value if vectorized else value[None]

        if self.observation_key == "continuous_observation":
            values = torch.as_tensor(batch("continuous_observation"), dtype=dtype, device=device)  # (N, n + 1)
            x = values[:, None, :-1]  # (N, 1, n): the obs; its last entry is the previous reward
            return model.embed_observations(values[:, None, -1], continuous_observations=x)[:, 0]
        rewards = torch.zeros(len(batch(self.observation_key)), 1, dtype=dtype, device=device)  # (N, 1)
        if "reward" in self.observation_space.spaces:
            rewards = torch.as_tensor(batch("reward"), dtype=dtype, device=device).reshape(-1, 1)
        if self.observation_key == "image_observation":
            frames = torch.as_tensor(batch("image_observation"), device=device)  # (N, 84, 84, 4) uint8
            x = scale_pixels(frames.permute(0, 3, 1, 2).to(dtype))  # (N, 4, 84, 84) in [-1, 1], as in training
            return model.embed_observations(rewards, image_observations=x[:, None])[:, 0]
        grid = batch("discrete_observation").astype(np.int64).reshape(len(rewards), -1)  # (N, m)
        if self.text_key is not None:
            missions = decode_missions(observation[self.text_key])  # N strings, single or batched alike
            grid = np.concatenate([grid, self.processor.tokenize_missions(missions)], axis=1)  # (N, m + 64)
        x = torch.as_tensor(grid, device=device)[:, None]  # (N, 1, m [+ 64]); the model pads to 212
        return model.embed_observations(rewards, discrete_observations=x)[:, 0]

    def _embed_actions(self, last_actions: Tensor | None, like: Tensor) -> Tensor:
        """``(N, H)`` embeddings of ``a_{t-1}`` (zeros before the first action: those tokens are masked)."""
        if last_actions is None:
            return torch.zeros_like(like)
        if isinstance(self.action_space, spaces.Discrete):
            return self.model.embed_actions(discrete_actions=last_actions[:, None])[:, 0]
        return self.model.embed_actions(continuous_actions=last_actions[:, None].to(like.dtype))[:, 0]

    # ------------------------------------------------------------------ rolling context
    def _advance(self, state: JatPolicyState, obs_embeds: Tensor) -> tuple[Tensor, JatPolicyState]:
        """Feeds ``o_t`` (and ``a_{t-1}``) of every env; returns the hidden states at ``o_t`` ``(N, H)``."""
        window, t = self.context_window, state.steps
        first = context_starts(t, window)  # (N,) s(t)
        start = t == 0
        roll = (t > 0) & (first > context_starts(t - 1, window))  # s(t) moved on: re-encode s(t)..t from position 0
        starts = np.where(start, 0, np.where(roll, first, state.context_starts))
        act_embeds = self._embed_actions(state.last_actions, obs_embeds)  # (N, H)
        tokens = self._extend_histories(state, obs_embeds, act_embeds, start, roll)
        hidden = torch.empty_like(obs_embeds)  # (N, H)
        cache = None
        if not roll.all():
            hidden, cache = self._step(state, obs_embeds, act_embeds, start, roll)
        if roll.any():
            rows = np.flatnonzero(roll)
            hidden_roll, part = self._reencode([tokens[i] for i in rows])
            rows_t = torch.as_tensor(rows, device=hidden.device)
            hidden[rows_t] = hidden_roll
            margin = self._margin
            cache = to_store(part, part.length, margin) if cache is None else write_rows(cache, rows_t, part, margin)
        new_state = JatPolicyState(window, t + 1, starts, tokens, state.last_actions, trim(cache))
        return hidden, new_state

    @property
    def _margin(self) -> int:
        # Spare cache columns: the store is compacted (one copy) about every W/4 steps instead of every step.
        return max(8, self.context_window // 2)

    def _extend_histories(
        self, state: JatPolicyState, obs_embeds: Tensor, act_embeds: Tensor, start: np.ndarray, roll: np.ndarray
    ) -> tuple[tuple[Tensor, ...], ...]:
        """New per-env token histories ``[o_s, a_s, ..., o_t]``."""
        keep = self.context_window - 1  # after a roll: the newest W/2 steps = W tokens, a_{t-1} included
        tokens = []
        for i, old in enumerate(state.tokens):
            o, a = obs_embeds[i], act_embeds[i]
            if start[i]:
                tokens.append((o,))
            elif roll[i]:
                tokens.append((*old[-keep:], a, o))
            else:
                tokens.append((*old, a, o))
        return tuple(tokens)

    def _step(
        self, state: JatPolicyState, obs_embeds: Tensor, act_embeds: Tensor, start: np.ndarray, roll: np.ndarray
    ) -> tuple[Tensor, StoredCache]:
        """One forward of the two new tokens ``[a_{t-1}, o_t]`` of every env against the cache.

        Starting envs feed ``[pad, o_0]`` (the pad masked); envs that roll over take part with masked dummy
        tokens (their rows are replaced by :meth:`_reencode`).
        """
        device = obs_embeds.device
        reset = torch.as_tensor(start | roll, device=device)
        lengths = torch.as_tensor([len(tokens) for tokens in state.tokens], device=device)  # position of a_{t-1}
        positions = torch.stack((lengths, lengths + 1), dim=1)  # (N, 2)
        positions = torch.where(reset[:, None], 0, positions)
        mask = torch.ones(state.n_envs, 2, dtype=torch.long, device=device)  # (N, 2)
        mask[:, 0] = (~reset).long()
        mask[torch.as_tensor(roll, device=device), 1] = 0
        past = state.cache
        if past is not None:
            if not isinstance(past, StoredCache):  # e.g. a state assembled by hand
                past = to_store(past, past.length, self._margin)
            if bool(reset.any()):
                past = invalidate_rows(past, reset)
            past = reserve(past, 2, self._margin)  # the two new tokens are written in place
        inputs = torch.stack((act_embeds, obs_embeds), dim=1)  # (N, 2, H)
        hidden, out = self.model.transformer(inputs, mask, positions, past, use_cache=True)
        if past is None:
            return hidden[:, 1], to_store(out, out.length, self._margin)
        return hidden[:, 1], past.with_slots(past.lo, past.hi + 2, out.positions, out.valid)  # (N, H) at o_t

    def _reencode(self, histories: list[tuple[Tensor, ...]]) -> tuple[Tensor, KVCache]:
        """Encodes the rolled-over contexts (each ``W + 1`` tokens) from position 0; hidden at ``o_t`` ``(R, H)``."""
        inputs = torch.stack([torch.stack(tokens) for tokens in histories])  # (R, W + 1, H)
        rows, length = inputs.shape[:2]
        positions = torch.arange(length, device=inputs.device).expand(rows, length)  # (R, W + 1)
        hidden, cache = self.model.transformer(inputs, None, positions, None, use_cache=True)
        return hidden[:, -1], cache

    # ------------------------------------------------------------------ actions
    def _select_actions(self, hidden: Tensor, deterministic: bool) -> tuple[Tensor, np.ndarray]:
        """(indices fed back as ``a_t``, actions returned to the env) from the hidden states at ``o_t``."""
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            # Scoring only the n action rows of the full-vocabulary head equals slicing its logits.
            weight = self.model.single_discrete_decoder.weight[: space.n]
            logits = F.linear(hidden, weight).float()  # (N, n)
            if deterministic:
                indices = logits.argmax(dim=-1)
            else:
                indices = torch.multinomial(logits.softmax(dim=-1), 1).squeeze(-1)  # (N,)
            actions = indices.cpu().numpy().astype(np.int64) + int(space.start)
            return indices, actions
        k = space.shape[0]
        raw = self.model.decode_actions(hidden[:, None], k)[:, 0].float()  # (N, k)
        clipped = torch.minimum(torch.maximum(raw, self._low.to(raw.device)), self._high.to(raw.device))
        return clipped, clipped.cpu().numpy().astype(space.dtype)

    # ------------------------------------------------------------------ save / load
    def save(self, directory: str | os.PathLike) -> Path:
        """Writes the model (``config.json`` + ``model.safetensors``), the processor and ``policy.json``.

        The files are written as one unit: a load sees the old checkpoint or the new one, and a directory left
        by a save killed half way is refused with a clear error (see :func:`~jat_policy.checkpoint.write_checkpoint`).

        Args:
            directory: Target directory (created).

        Returns:
            The directory.
        """
        has_processor = self.processor is not None

        def write_policy(staging: Path) -> None:
            if has_processor:
                self.processor.save_pretrained(staging)
            write_policy_config(staging, self.observation_space, self.action_space, self.context_window, has_processor)

        return write_checkpoint(directory, self.model.checkpoint_weights(), self.model.write_config, write_policy)

    def push_to_hub(self, repo_id: str, card: Any, *, private: bool = False, token: str | None = None) -> str:
        """Saves the policy with its model card and uploads both (:func:`jat_policy.model_card.push_to_hub`).

        Args:
            repo_id: ``"user/name"`` (created if needed).
            card: Its ``huggingface_hub.ModelCard``, e.g. ``read_model_card(<the checkpoint it came from>)``.
            private: Create the repo as private.
            token: Hub token (default: the logged-in one).

        Returns:
            The URL of the commit.
        """
        import tempfile

        from jat_policy.model_card import push_to_hub

        with tempfile.TemporaryDirectory(prefix="jat-push-") as staging:
            self.save(staging)
            return push_to_hub(staging, repo_id, private=private, token=token, card=card)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | torch.device | None = None) -> JatPolicy:
        """Loads a policy written by :meth:`save` (spaces and context window from ``policy.json``).

        Args:
            directory: The directory.
            device: Device for the model (``"auto"``: CUDA when available).

        Returns:
            The policy.
        """
        return cls.from_pretrained(directory, device=device)

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | os.PathLike,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
        processor: Any = None,
        context_window: int | None = None,
        device: str | torch.device | None = None,
        revision: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> JatPolicy:
        """A policy from a checkpoint directory or a Hub repo id (e.g. ``jat-project/jat``) and the env's spaces.

        Args:
            path_or_hub_id: Local directory or Hub repo id (safetensors only; offline only directories load).
            observation_space: The wrapped env's observation space; default: the one in ``policy.json``.
            action_space: The env's action space; default: the one in ``policy.json``.
            processor: Processor to use; default: the checkpoint's (tokenizer files), if any.
            context_window: ``W`` in timesteps; default: ``policy.json``'s, else the per-domain default.
            device: Device for the model (``"auto"``: CUDA when available).
            revision: Hub revision.
            dtype: dtype to cast the weights to.

        Returns:
            The policy.
        """
        directory = resolve_model_dir(path_or_hub_id, revision)
        check_checkpoint_files(directory)
        meta = read_policy_config(directory)
        if (observation_space is None or action_space is None) and meta is None:
            raise ValueError(
                f"{directory} has no {POLICY_CONFIG_NAME} (not saved by JatPolicy.save): pass the env's "
                "observation_space and action_space."
            )
        if meta is not None:
            saved = meta["observation_space"], meta["action_space"]
            observation_space = saved[0] if observation_space is None else observation_space
            action_space = saved[1] if action_space is None else action_space
            if context_window is None and (observation_space, action_space) == saved:
                context_window = meta.get("context_window")  # the saved window belongs to the saved spaces
        model = JatModel.from_pretrained(directory, device=resolve_device(device), dtype=dtype)
        if processor is None and saved_processor(directory, meta):
            processor = JatProcessor.from_pretrained(directory)
        return cls(model, observation_space, action_space, processor=processor, context_window=context_window)

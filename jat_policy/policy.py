"""``JatPolicy``: the JAT agent behind stable-baselines3's ``predict`` contract, with a rolling KV-cached context.

``predict(observation, state=None, episode_start=None, deterministic=False) -> (actions, state)`` works like an
SB3 policy's: one observation or a batch (one row per env), actions shaped and typed as SB3 returns them, the
per-env context carried in an explicit :class:`JatPolicyState` (nothing is stored on the policy), and
``episode_start`` clearing the context of the envs that start a new episode. It therefore runs unchanged in
``stable_baselines3.common.evaluation.evaluate_policy`` over ``DummyVecEnv``/``SubprocVecEnv`` of wrapped envs.

Rolling context (DESIGN.md, decision 3). Every env advances in the same forward pass, and each step feeds only
the two new tokens ``[a_{t-1}, o_t]``; the action for ``t`` is read at ``o_t``. The context window ``W`` is counted
in timesteps: at step ``t`` of an episode the model sees exactly the timesteps ``s(t) .. t``, with positions starting
at 0, where::

    s(t) = 0                             if t < W
    s(t) = (t // (W / 2) - 1) * (W / 2)  otherwise

so when the window is full the oldest half is dropped. The next window is built alongside the current one
(:mod:`jat_policy.rolling`), so the switch costs nothing and every step takes the same time. Positions are never
reused and the memory per env is bounded (two rows of ``2 W`` key/value columns, allocated once per state and
updated in place). The reference's ``get_next_action`` instead ran four tokens per step for one env and let cached
positions collapse once its cache was full.

Inputs are validated in one place before anything reaches the model (:mod:`jat_policy.policy_inputs`): a NaN, inf or
value beyond ``MAX_INPUT_MAGNITUDE`` would otherwise stay in the env's KV cache and turn every later action of the
episode into NaN. States carry their policy's fingerprint, so a state is never read by a policy it does not fit.
"""

from __future__ import annotations

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

from jat_policy.cache import WindowBuffers
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
from jat_policy.policy_state import JatPolicyState, context_start, state_fingerprint
from jat_policy.precision import PRECISIONS, apply_precision, kv_cache_dtype, resolve_precision
from jat_policy.processing import JatProcessor, scale_pixels
from jat_policy.rolling import GraphedStep, plan_step, step_forward

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_INPUT_MAGNITUDE",
    "PRECISIONS",
    "JatPolicy",
    "JatPolicyState",
    "context_start",
    "space_from_json",
    "space_to_json",
]

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
        precision: ``"fp32"`` (exact), ``"bf16"`` (bf16 weights and KV cache) or ``"int8"`` (int8 weights, dynamic
            activation quantisation, an fp16 KV cache on CPUs with native fp16 and bf16 elsewhere; CPU only), see
            :mod:`jat_policy.precision`. The model is converted in place, like ``model.to``. Default: bf16 on CUDA,
            else the model's own (fp32 for a loaded checkpoint).
        cuda_graph: Replay each step as a CUDA graph over static KV buffers (default: on for CUDA devices; CUDA
            only).

    Attributes:
        precision: The precision in use.
        fingerprint: A 16-hex-digit digest of the model architecture, precision, spaces and context window,
            stored in every state ``predict`` returns; a state with another fingerprint is refused.

    Raises:
        ValueError: For observation or action spaces the checkpoint cannot represent, a bad context window, an
            unknown ``invalid_values`` or ``precision``, int8 off the CPU, or ``cuda_graph`` off CUDA.

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
        precision: str | None = None,
        cuda_graph: bool | None = None,
    ) -> None:
        if not isinstance(model, JatModel):
            raise TypeError(f"model must be a JatModel, got {type(model).__name__}.")
        device = resolve_device(device)
        model = model if device is None else model.to(device)
        self.precision = resolve_precision(precision, model, model.device)
        self.model = apply_precision(model, self.precision).eval()
        self.cuda_graph = self._resolve_cuda_graph(cuda_graph)
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
            f"context_window={self.context_window}, device={self.device}, precision={self.precision!r})"
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
            # A model sees at evaluation the longest context it was trained on: positions past it were never
            # fitted (the trainer records its longest windows in the config, trainers.bc.fitted_windows).
            kind = "image" if self.observation_key == "image_observation" else "default"
            trained = self.model.config.recorded_training_windows()[kind]
            context_window = min(trained, limit - limit % 2)
            context_window -= context_window % 2
        if not isinstance(context_window, int | np.integer) or context_window < 2 or context_window % 2:
            raise ValueError(f"context_window must be an even int >= 2 (timesteps), got {context_window!r}.")
        if context_window > limit:
            raise ValueError(
                f"context_window={context_window} timesteps needs {2 * context_window} positions, but the model has "
                f"max_position_embeddings={self.model.config.max_position_embeddings}: use at most {limit}."
            )
        return int(context_window)

    def _resolve_cuda_graph(self, cuda_graph: bool | None) -> bool:
        on_cuda = self.device.type == "cuda"
        if cuda_graph is None:
            return on_cuda
        if cuda_graph and not on_cuda:
            raise ValueError(f"cuda_graph=True needs the model on a CUDA device, it is on {self.device}.")
        return bool(cuda_graph)

    def _fingerprint(self) -> str:
        """A short digest of what a state depends on: architecture, precision, spaces and context window.

        Weights are left out on purpose: a policy loaded from the same checkpoint with the same spaces accepts the
        state (so would one with other weights of the same architecture, reading the context with its own weights).
        """
        return state_fingerprint(
            self.model.config.to_dict(),
            dtype=self._param_info()[1],
            precision=self.precision,
            observation_space=self.observation_space,
            action_space=self.action_space,
            context_window=self.context_window,
        )

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
        only fits the policy that returned it, or one with the same architecture, precision, spaces and context
        window (e.g. the same checkpoint saved and reloaded); any other policy's state is a ``ValueError``.

        State contract (HF's ``Cache`` convention): the keys/values are preallocated once per rollout and updated
        in place, so ``predict`` *consumes* the state it is given and returns the live one: always continue from the
        returned state (``actions, state = policy.predict(obs, state)``). Passing a consumed state again raises a
        ``ValueError`` instead of acting on overwritten keys/values; to branch two futures from one past, take
        ``state.copy()`` before the call. A call that raises before reaching the model (invalid input, wrong
        state) does not consume the state.

        Args:
            observation: A step dict of one env (entries shaped as the observation space; text a ``str``) or of
                ``N`` envs (a leading env dimension; text a list/array of ``N`` strings or ``(N, 256)`` bytes).
            state: The state returned by the previous call (consumed by this one), or ``None`` to start every env
                afresh.
            episode_start: ``(N,)`` bools: envs whose observation starts a new episode (their context is cleared;
                the other envs keep theirs). ``None``: no env starts one (unless ``state`` is ``None``). Its length
                must be ``N`` even when ``state`` is ``None``.
            deterministic: Discrete actions: argmax instead of sampling from the softmax. Continuous actions
                are deterministic either way.

        Returns:
            ``(actions, state)``: actions ``(N,)`` int64 for ``Discrete`` or ``(N, k)`` in the ``Box``'s dtype,
            clipped to its bounds (without the leading ``N`` for a single observation), and the live state (the
            given one is consumed).

        Raises:
            ValueError: For a Gymnasium ``(obs, info)`` tuple, observations that do not match the observation
                space, NaN/inf/too large values, a state from another policy or already consumed, or a state /
                ``episode_start`` for another number of envs.
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
        state.check_live()
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
        """Feeds ``o_t`` (and ``a_{t-1}``) of every env to both its contexts; returns the hidden at ``o_t`` ``(N, H)``.

        The state's buffers are updated in place and handed to the returned state (the given one is consumed).
        """
        n_envs, device = state.n_envs, obs_embeds.device
        buffers = state.buffers if state.buffers is not None else self._allocate(n_envs)
        primary = state.primary if state.primary is not None else np.zeros(n_envs, dtype=np.int64)
        plan = plan_step(state.steps, state.context_starts, primary, buffers.lengths, self.context_window)
        pair = torch.stack((self._embed_actions(state.last_actions, obs_embeds), obs_embeds), dim=1)  # (N, 2, H)
        inputs = torch.cat((pair, pair))  # (2N, 2, H): both contexts of an env take the same tokens
        columns = torch.as_tensor(plan.columns, device=device)  # (2N, 2)
        new_state = JatPolicyState(
            self.context_window, state.steps + 1, plan.starts, state.last_actions, buffers, plan.primary
        )
        buffers.owner = new_state.token  # from here on the given state is consumed (its rows get overwritten)
        if self.cuda_graph:
            graph = buffers.graphs.get(inputs.shape)
            if graph is None:
                graph = buffers.graphs[inputs.shape] = GraphedStep(self.model.transformer, buffers, inputs)
            hidden = graph(inputs, columns, torch.as_tensor(plan.lengths, device=device))  # (2N, 2, H)
            hidden = hidden[torch.as_tensor(plan.primary_rows(), device=device), 1:]  # (N, 1, H) at o_t
        else:
            windows = torch.as_tensor(plan.primary_rows(), device=device)
            hidden = step_forward(self.model.transformer, buffers, inputs, columns, plan.lengths, keep=windows)
        buffers.lengths = plan.lengths
        return hidden[:, 0], new_state  # (N, H) at o_t

    def _allocate(self, n_envs: int) -> WindowBuffers:
        """Zeroed buffers for ``2 N`` contexts (two per env) of ``2 W`` columns (dtype: :func:`kv_cache_dtype`)."""
        config = self.model.config
        device = self.device
        dtype = kv_cache_dtype(self.precision)
        head_dim = config.hidden_size // config.num_heads
        rows, capacity = 2 * n_envs, 2 * self.context_window
        return WindowBuffers.allocate(rows, config.num_layers, config.num_heads, head_dim, capacity, dtype, device)

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

        Raises:
            ValueError: For an int8 policy (save the fp32 one; precision is applied at load).
        """
        if self.precision == "int8":
            raise ValueError(
                "An int8 policy cannot be saved: checkpoints hold fp32 weights and quantisation happens at load. Save "
                "the fp32 policy and load it with precision='int8'."
            )
        # Checkpoints stay fp32 whatever the precision in use (a bf16 policy's weights are upcast exactly).
        weights = {k: v.float() if v.is_floating_point() else v for k, v in self.model.checkpoint_weights().items()}
        has_processor = self.processor is not None

        def write_policy(staging: Path) -> None:
            if has_processor:
                self.processor.save_pretrained(staging)
            write_policy_config(staging, self.observation_space, self.action_space, self.context_window, has_processor)

        return write_checkpoint(directory, weights, self.model.write_config, write_policy)

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
    def load(
        cls, directory: str | os.PathLike, device: str | torch.device | None = None, precision: str | None = None
    ) -> JatPolicy:
        """Loads a policy written by :meth:`save` (spaces and context window from ``policy.json``).

        Args:
            directory: The directory.
            device: Device for the model (``"auto"``: CUDA when available).
            precision: ``"fp32"``, ``"bf16"`` or ``"int8"`` (default: bf16 on CUDA, fp32 elsewhere).

        Returns:
            The policy.
        """
        return cls.from_pretrained(directory, device=device, precision=precision)

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
        precision: str | None = None,
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
            dtype: dtype to cast the weights to at load (``torch.bfloat16`` implies ``precision="bf16"``, with the
                weights outside the blocks' linears rounded to bf16 as well; ``precision="bf16"`` keeps them exact).
            precision: ``"fp32"``, ``"bf16"`` or ``"int8"``, applied to the fp32 checkpoint at load (default: bf16
                on CUDA, else fp32 or ``dtype``'s).

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
        return cls(
            model, observation_space, action_space, processor, context_window=context_window, precision=precision
        )

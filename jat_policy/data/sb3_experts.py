"""Stable-baselines3 model files as experts, loaded without unpickling by default.

:class:`SB3Expert` plays any SB3 ``.zip`` (see :mod:`jat_policy.data.experts` for the expert protocol).
A zip's pickled entries are code; :func:`sb3_safe_objects` rebuilds what acting needs from the readable
fields SB3 writes beside them, so nothing is unpickled unless ``trust_pickle`` says so.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from jat_policy.wrappers.common import raw_continuous


def sb3_algorithm(path: str | Path, algo: str | None = None) -> type:
    """The SB3 algorithm class that saved ``path`` (read from the zip's policy class), or ``algo``'s.

    Args:
        path: An SB3 ``.zip``.
        algo: Force an algorithm name (``"ppo"``, ``"sac"``, ...), e.g. for sb3-contrib models.

    Returns:
        The algorithm class.
    """
    import stable_baselines3 as sb3

    if algo is not None:
        name = algo.upper()
        for module in (sb3, _sb3_contrib()):
            if module is not None and hasattr(module, name):
                return getattr(module, name)
        raise ValueError(f"algo={algo!r}: not a stable-baselines3 (or sb3-contrib) algorithm.")
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a stable-baselines3 model zip ({error}).") from None
    module = data.get("policy_class", {}).get("__module__", "")
    by_module = {"sac": sb3.SAC, "td3": sb3.TD3, "dqn": sb3.DQN}
    for key, cls in by_module.items():
        if f".{key}." in module:
            return cls
    if module == "stable_baselines3.common.policies":
        return sb3.PPO if "clip_range" in data else sb3.A2C
    contrib = _sb3_contrib()
    if contrib is not None and module.startswith("sb3_contrib."):
        return getattr(contrib, module.split(".")[1].upper())
    raise ValueError(f"Cannot tell the algorithm of {path} (policy module {module!r}); pass algo=.")


def _sb3_contrib() -> Any:
    try:
        import sb3_contrib
    except ImportError:
        return None
    return sb3_contrib


class SB3Expert:
    """Any stable-baselines3 model file as an expert.

    The model sees what it was trained on: a model trained on the raw Gymnasium env gets the raw
    observation (``continuous_observation`` without the appended reward, or the image/discrete
    observation), a model trained on the wrapped env gets the step dict.

    Args:
        path: The ``.zip`` saved by SB3 (e.g. by ``jat-policy train-expert``).
        algo: Algorithm name when it cannot be read from the zip (sb3-contrib).
        deterministic: Greedy actions (``True``) or sampled ones (seeded per episode).
        device: Torch device for the model.
        trust_pickle: Let SB3 unpickle the zip's pickled entries. A zip is code: unpickling runs whatever
            it holds, so only do this for files you made or trust. By default (``None``: the environment
            variable ``JAT_POLICY_TRUST_PICKLE=1`` turns it on) nothing is unpickled: spaces are rebuilt from
            the readable fields SB3 writes beside each pickle, schedules become constants, the policy class is
            the algorithm's own, training state is dropped; a zip that needs more raises a ``ValueError``.
        observation_space: The space the model was trained on, when it cannot be read from the zip (a
            ``Dict`` space: pass the env's).
        action_space: Likewise for the action space.

    Example:
        >>> expert = SB3Expert("experts/InvertedPendulum-v5-ppo.zip")  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        algo: str | None = None,
        deterministic: bool = True,
        device: str = "cpu",
        trust_pickle: bool | None = None,
        observation_space: Any = None,
        action_space: Any = None,
    ):
        self.trust_pickle = trust_pickle_default() if trust_pickle is None else trust_pickle
        self._spaces = {
            key: space
            for key, space in (("observation_space", observation_space), ("action_space", action_space))
            if space is not None
        }
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"SB3 model {str(self.path)!r} does not exist (train one with `jat-policy train-expert`)."
            )
        self.algo = algo
        self.deterministic, self.device = deterministic, device
        self.name = f"sb3:{self.path.name}"
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}

    @property
    def model(self) -> Any:
        """The loaded SB3 model (loaded on first use, so the expert pickles cheaply to workers)."""
        if self._model is None:
            algorithm = sb3_algorithm(self.path, self.algo)
            custom_objects = None if self.trust_pickle else self._safe_objects(algorithm)
            self._model = algorithm.load(str(self.path), device=self.device, custom_objects=custom_objects)
        return self._model

    def _safe_objects(self, algorithm: type) -> dict[str, Any]:
        with zipfile.ZipFile(self.path) as archive:
            data = json.loads(archive.read("data"))
        objects, missing = sb3_safe_objects(data, algorithm, self._spaces)
        if missing:
            spaces_missing = any(entry.startswith(("observation_space", "action_space")) for entry in missing)
            hint = "Pass the env's spaces (SB3Expert(..., observation_space=...)). " if spaces_missing else ""
            raise ValueError(
                f"{self.path} holds pickled entries that cannot be loaded without running code from the file: "
                f"{'; '.join(missing)}. {hint}Only if you trust the file: SB3Expert(..., trust_pickle=True) or "
                f"{_TRUST_PICKLE_ENV}=1 for the CLI."
            )
        return objects

    def reset(self, env: Any, seed: int | None) -> None:
        """Seeds sampling (stochastic experts) with the episode seed."""
        if not self.deterministic and seed is not None:
            import torch

            torch.manual_seed(seed)

    def model_observation(self, obs: dict[str, Any]) -> Any:
        """Converts the step dict to the observation the model was trained on."""
        space = self.model.observation_space
        if hasattr(space, "spaces"):  # trained on the wrapped env (Dict space)
            return {key: np.asarray(obs[key]) for key in space.spaces}
        candidates = []
        if "continuous_observation" in obs:
            candidates += [raw_continuous(obs), np.asarray(obs["continuous_observation"])]
        if "image_observation" in obs:
            image = np.asarray(obs["image_observation"])
            candidates += [image, image.transpose(2, 0, 1)]  # (84, 84, 4) -> (4, 84, 84)
        if "discrete_observation" in obs:
            candidates.append(np.asarray(obs["discrete_observation"]))
        for candidate in candidates:
            if candidate.shape == space.shape:
                return candidate.astype(space.dtype)
        raise ValueError(
            f"{self.path.name} expects observations of shape {space.shape}; the env gives "
            f"{[c.shape for c in candidates]} (raw obs, obs+reward, ...). Was the model trained on another env "
            "or env version (e.g. MuJoCo v4 vs v5 sizes)?"
        )

    def __call__(self, obs: dict[str, Any]) -> Any:
        """The model's action (``model.predict``)."""
        action, _ = self.model.predict(self.model_observation(obs), deterministic=self.deterministic)
        return action.item() if np.ndim(action) == 0 else action


# ----------------------------------------------------------------------------------------------------------------
# Loading SB3 zips without unpickling

# SB3 stores these "data" entries with cloudpickle. None of them is needed to act: SB3's ``_setup_model``
# rebuilds buffers and schedules from plain fields, and training state is reset by ``learn``.
_SB3_UNUSED_ENTRIES = frozenset(
    {
        "_last_obs",
        "_last_episode_starts",
        "_last_original_obs",
        "ep_info_buffer",
        "ep_success_buffer",
        "rollout_buffer_class",
        "replay_buffer_class",
        "action_noise",
        "env",
    }
)
_SB3_SCHEDULE_ENTRIES = frozenset(
    {"lr_schedule", "learning_rate", "clip_range", "clip_range_vf", "exploration_schedule"}
)
# Training settings pickled without readable fields; ``_setup_model`` turns these plain values into SB3's types.
_SB3_TRAINING_DEFAULTS = {"train_freq": 1}
_TRUST_PICKLE_ENV = "JAT_POLICY_TRUST_PICKLE"


def trust_pickle_default() -> bool:
    """``True`` when the environment variable ``JAT_POLICY_TRUST_PICKLE=1`` opts in (the CLI's switch)."""
    return os.environ.get(_TRUST_PICKLE_ENV, "") == "1"


def _sb3_numbers(text: str, what: str) -> np.ndarray:
    """Numbers of a numpy ``str(array)`` as SB3 writes them readable beside the pickle (``'[-inf 0. 3.]'``)."""
    text = str(text)
    tokens = text.replace("[", " ").replace("]", " ").replace(",", " ").split()
    if "..." in tokens:
        # numpy elides the middle of big arrays; bounds shown equal at both ends are taken as constant
        tokens = [token for token in tokens if token != "..."]
        if len(set(tokens)) != 1:
            raise ValueError(f"{what}: the bounds {text[:60]!r}... are elided and not constant")
    try:
        return np.array([float(token) for token in tokens], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{what}: cannot read numbers from {text[:60]!r}") from None


def _sb3_shape(entry: dict[str, Any]) -> tuple[int, ...]:
    shape = entry["_shape"]
    return tuple(int(n) for n in (json.loads(shape) if isinstance(shape, str) else shape))


def _sb3_box(entry: dict[str, Any], what: str) -> Any:
    from gymnasium import spaces

    shape = _sb3_shape(entry)
    dtype = np.dtype(entry["dtype"])
    bounds = []
    for name in ("low", "high"):
        values = _sb3_numbers(entry[name], f"{what}.{name}")
        if values.size not in (1, int(np.prod(shape))):
            raise ValueError(f"{what}.{name}: {values.size} values for shape {shape}")
        bounds.append(np.broadcast_to(values, (int(np.prod(shape)),)).reshape(shape).astype(dtype))
    return spaces.Box(low=bounds[0], high=bounds[1], shape=shape, dtype=dtype)


def sb3_space(entry: dict[str, Any], what: str) -> Any:
    """Rebuilds a Gymnasium space from the readable fields SB3 writes beside its pickle (never the pickle).

    Args:
        entry: The zip's ``data`` entry (``{":type:": ..., ":serialized:": ..., "dtype": ..., ...}``).
        what: Its name, for errors.

    Returns:
        The space (Box, Discrete, MultiDiscrete or MultiBinary).

    Raises:
        ValueError: Another space type (e.g. ``Dict``), or fields that cannot be read.
    """
    from gymnasium import spaces

    kind = str(entry.get(":type:", ""))
    try:
        if "spaces.box.Box" in kind:
            return _sb3_box(entry, what)
        if "spaces.discrete.Discrete" in kind:
            return spaces.Discrete(int(entry["n"]), start=int(entry.get("start", 0)))
        if "spaces.multi_discrete.MultiDiscrete" in kind:
            nvec = _sb3_numbers(entry["nvec"], f"{what}.nvec").astype(np.int64)
            start = _sb3_numbers(entry.get("start", "[0]"), f"{what}.start").astype(np.int64)
            return spaces.MultiDiscrete(nvec, dtype=np.dtype(entry["dtype"]), start=np.broadcast_to(start, nvec.shape))
        if "spaces.multi_binary.MultiBinary" in kind:
            shape = _sb3_shape(entry)
            return spaces.MultiBinary(shape[0] if len(shape) == 1 else shape)
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot rebuild {what} ({kind}) from its readable fields: {error}") from None
    raise ValueError(f"cannot rebuild {what} of type {kind or '?'} from its readable fields")


def _sb3_constant(entry: dict[str, Any], data: dict[str, Any]) -> float:
    """A schedule as the constant SB3 shows beside the pickle (``ConstantSchedule(val=0.2)``); 0 otherwise.

    Only ``predict`` is used, which reads no schedule; a resumed training would see the constant.
    """
    match = re.search(r"val=([-+0-9.eE]+)", " ".join(str(value) for value in entry.values()))
    if match:
        return float(match.group(1))
    learning_rate = data.get("learning_rate")
    return float(learning_rate) if isinstance(learning_rate, (int, float)) else 0.0


def _sb3_policy_class(algorithm: type, entry: dict[str, Any]) -> type:
    """The policy class among the algorithm's own (``MlpPolicy``, ...) whose module and docstring match."""
    for policy in getattr(algorithm, "policy_aliases", {}).values():
        if policy.__module__ == entry.get("__module__") and (policy.__doc__ or "") == entry.get("__doc__", ""):
            return policy
    raise ValueError("policy_class is not one of the algorithm's own policies (a custom policy class)")


def _sb3_allowed_classes() -> dict[str, type]:
    """Classes a ``policy_kwargs`` may name, by dotted path: torch activations and optimizers, SB3's extractors."""
    import inspect

    import torch
    from stable_baselines3.common import torch_layers

    allowed = [
        (torch.nn.modules.activation, torch.nn.Module),
        (torch.optim, torch.optim.Optimizer),
        (torch_layers, torch_layers.BaseFeaturesExtractor),
    ]
    return {
        f"{cls.__module__}.{cls.__qualname__}": cls
        for module, base in allowed
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, base)
    }


def _sb3_kwarg(name: str, value: Any) -> Any:
    """A ``policy_kwargs`` value from its readable form; classes only from :func:`_sb3_allowed_classes`."""
    if not (isinstance(value, str) and value.startswith("<") and value.endswith(">")):
        return value  # plain JSON (net_arch, optimizer_kwargs, ...)
    match = re.fullmatch(r"<class '([\w.]+)'>", value)
    allowed = _sb3_allowed_classes()
    if match is None or match.group(1) not in allowed:
        raise ValueError(f"policy_kwargs[{name!r}] = {value} is code this loader does not know")
    return allowed[match.group(1)]


def sb3_safe_objects(
    data: dict[str, Any], algorithm: type, overrides: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """``custom_objects`` for SB3's ``load`` that replace every pickled entry of ``data``.

    Args:
        data: The zip's ``data`` JSON.
        algorithm: The SB3 algorithm class.
        overrides: Objects given by the caller (e.g. the env's ``observation_space``); they win.

    Returns:
        The replacements, and ``"entry: reason"`` for each pickled entry that could not be replaced.
    """
    objects, missing = dict(overrides or {}), []
    for key, entry in data.items():
        if key in objects or not (isinstance(entry, dict) and ":serialized:" in entry):
            continue
        try:
            objects[key] = _sb3_replacement(key, entry, data, algorithm)
        except ValueError as error:
            missing.append(f"{key}: {error}")
    return objects, missing


def _sb3_replacement(key: str, entry: dict[str, Any], data: dict[str, Any], algorithm: type) -> Any:
    if key in _SB3_UNUSED_ENTRIES:
        return None
    if key in _SB3_TRAINING_DEFAULTS:
        return _SB3_TRAINING_DEFAULTS[key]
    if key in _SB3_SCHEDULE_ENTRIES:
        return _sb3_constant(entry, data)
    if key in ("observation_space", "action_space"):
        return sb3_space(entry, key)
    if key == "policy_class":
        return _sb3_policy_class(algorithm, entry)
    if key == "policy_kwargs":
        return {name: _sb3_kwarg(name, value) for name, value in entry.items() if not name.startswith(":")}
    raise ValueError(f"an unknown pickled entry of type {entry.get(':type:', '?')}")

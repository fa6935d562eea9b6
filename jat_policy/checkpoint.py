"""Everything about files on disk and the Hub: checkpoint directories, configs, safetensors, tokenizer, policy.json.

Like SB3's ``common/save_util.py``, one module owns the files, so loading runs one way: ``JatPolicy`` and
``JatModel`` / ``JatProcessor`` ask this module for a directory, its checked files and their contents, and build
themselves from what it returns. It imports neither the model, the processor nor the policy (no cycle).

Files of a saved policy: ``config.json`` and ``model.safetensors`` (the model), ``processor_config.json`` and the
tokenizer files (the processor), ``policy.json`` (spaces, context window). Pickle is never read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor
    from transformers import PreTrainedTokenizerBase

    from jat_policy.configuration import JatConfig

__all__ = [
    "CONFIG_NAME",
    "MANIFEST_KEY",
    "POLICY_CONFIG_NAME",
    "POLICY_FORMAT",
    "PROCESSOR_CONFIG_NAME",
    "PROCESSOR_FILES",
    "STAGING_PREFIX",
    "WEIGHTS_NAME",
    "WTE_ALIASES",
    "check_checkpoint_files",
    "hub_reachable",
    "load_jat_config",
    "load_tokenizer",
    "looks_local",
    "read_model_weights",
    "read_policy_config",
    "read_processor_config",
    "read_safetensors",
    "resolve_model_dir",
    "saved_processor",
    "space_from_json",
    "space_to_json",
    "write_checkpoint",
    "write_policy_config",
]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
PROCESSOR_CONFIG_NAME = "processor_config.json"
PROCESSOR_FILES = (PROCESSOR_CONFIG_NAME, "tokenizer.json", "tokenizer_config.json")
POLICY_CONFIG_NAME = "policy.json"
POLICY_FORMAT = "jat-policy/1"
# The shared token embedding is registered under three names; a checkpoint may hold any of them.
WTE_ALIASES = ("transformer.wte.weight", "single_discrete_encoder.weight", "multi_discrete_encoder.0.weight")


# --------------------------------------------------------------------------------------------------
# Checkpoint directories and the model's files
# --------------------------------------------------------------------------------------------------


# A Hub repo id is ``namespace/name`` of these characters; the folders our own commands write by default are
# local even when they do not exist yet (``runs/nope`` is a missing run, not a Hub user called "runs").
_HUB_ID_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LOCAL_ROOTS = ("runs", "quickstart", "experts", "data", "checkpoints", "outputs")


def looks_local(name_or_path: str | os.PathLike) -> bool:
    """Whether a string that is not an existing directory is meant as a local path rather than a Hub repo id.

    Local: it starts with ``.``, ``/`` or ``~``, uses the OS separator (Windows), is not ``namespace/name``
    with Hub characters, or its first part is an existing folder or one our commands write (``runs/...``).
    """
    name = str(name_or_path)
    if name.startswith((".", "/", "~")) or (os.sep != "/" and os.sep in name):
        return True
    parts = name.split("/")
    if len(parts) != 2 or not all(_HUB_ID_PART.fullmatch(part) for part in parts):
        return True
    return parts[0] in _LOCAL_ROOTS or Path(parts[0]).is_dir()


def _missing_directory(name: str) -> FileNotFoundError:
    path = Path(name).expanduser()
    if path.exists():
        return FileNotFoundError(f"{name!r} is a file, not a checkpoint directory.")
    parent = next((p for p in path.parents if p.is_dir()), None)
    hint = ""
    if parent is not None and parent != Path("."):
        entries = sorted(p.name for p in parent.iterdir() if p.is_dir())[:6]
        hint = f"; {parent}/ holds: {', '.join(entries)}" if entries else f"; {parent}/ has no sub-folders"
    return FileNotFoundError(f"No such directory: {name!r} (no checkpoint there{hint}).")


def resolve_model_dir(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """Returns a local directory for a checkpoint: the path itself, or a Hub snapshot download.

    Args:
        name_or_path: Local directory or Hub repo id.
        revision: Hub revision.

    Returns:
        The directory.

    Raises:
        FileNotFoundError: For a path that looks local (:func:`looks_local`) and is not a directory.
        OSError: When a Hub repo id cannot be fetched (offline, unknown repo).
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists() or looks_local(name_or_path):
        raise _missing_directory(str(name_or_path))
    from huggingface_hub import constants, snapshot_download

    try:
        local = snapshot_download(
            str(name_or_path), revision=revision, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]
        )
    except Exception as err:  # offline mode, no network, unknown repo: one clear message
        offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "TRUE")
        why = "Offline mode: HF_HUB_OFFLINE=1" if offline else f"{type(err).__name__}: {err}"
        raise OSError(
            f"{str(name_or_path)!r} is not a local directory and could not be fetched from the Hugging Face Hub "
            f"({why}). Pass the path of a saved checkpoint, e.g. runs/jat-bc/final."
        ) from err
    return Path(local)


def load_jat_config(directory: Path, **overrides: Any) -> JatConfig:
    """Reads and checks ``config.json`` of a JAT checkpoint.

    Args:
        directory: Checkpoint directory.
        **overrides: Fields to override.

    Returns:
        The config.
    """
    from jat_policy.configuration import JatConfig  # here: importing the processor must not import torch

    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG_NAME}: not a saved JAT checkpoint.")
    raw = read_json_object(
        config_path,
        "the checkpoint is corrupt",
        " of config fields (model_type, hidden_size, ...): the file is truncated or not a model config",
    )
    model_type = raw.get("model_type")
    if model_type != JatConfig.model_type:
        raise ValueError(
            f"{config_path} has model_type={model_type!r}, expected 'jat': this is not a JAT checkpoint "
            "(GPT-2/GPT-Neo weights cannot be loaded as JatModel directly)."
        )
    for key in ("model_type", "transformers_version", "architectures", "_name_or_path", "torch_dtype", "dtype"):
        raw.pop(key, None)
    raw.update(overrides)
    from huggingface_hub.errors import StrictDataclassError

    try:
        return JatConfig(**raw)
    except (TypeError, ValueError, StrictDataclassError) as err:  # wrong types, sizes, unknown layouts
        raise ValueError(f"{config_path} is not a valid JAT config: {err}") from err


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """The tensors of a safetensors file; a missing or unreadable file is a clear error (never pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: JAT checkpoints hold weights in model.safetensors (pickled .bin files are refused)."
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(
            f"{path} is not a readable safetensors file ({err}); it may be truncated or corrupt."
        ) from err


def read_model_weights(path: Path, expected: dict[str, Tensor]) -> dict[str, Tensor]:
    """Reads ``model.safetensors`` and checks its tensors against a model's state dict.

    The shared token embedding may be stored under any of its names (:data:`WTE_ALIASES`); every alias is filled.

    Args:
        path: The safetensors file.
        expected: The state dict of the model to load into (names and shapes).

    Returns:
        The tensors, one per key of ``expected``.

    Raises:
        ValueError: Keys or shapes do not match the model (a config.json from another checkpoint).
    """
    state = read_safetensors(path)
    present = [alias for alias in WTE_ALIASES if alias in state]
    if present:
        for alias in WTE_ALIASES:
            state.setdefault(alias, state[present[0]])
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match the config: missing {missing[:5]}{'…' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}. "
            "Is config.json from the same checkpoint?"
        )
    bad = [(k, tuple(v.shape), tuple(expected[k].shape)) for k, v in state.items() if v.shape != expected[k].shape]
    if bad:
        name, got, want = bad[0]
        raise ValueError(f"{path}: tensor {name} has shape {got}, the config expects {want} ({len(bad)} mismatches).")
    return state


# --------------------------------------------------------------------------------------------------
# Checkpoints written as one unit
# --------------------------------------------------------------------------------------------------


# A save stages every file in a ``.jat-save-*`` folder inside the target, then moves them in, the weights first.
# The weights' safetensors metadata lists the sha256 of every other file saved with them; a load checks it. So a
# directory left by a save killed half way (new weights beside an old config.json or policy.json, or the reverse)
# is refused instead of loading as a silent mix. Checkpoints of earlier releases carry no list and load as before.
STAGING_PREFIX = ".jat-save-"
MANIFEST_KEY = "jat_checkpoint_files"


def write_checkpoint(
    directory: str | os.PathLike, weights: dict[str, Tensor], *writers: Callable[[Path], Any]
) -> Path:
    """Writes ``model.safetensors`` and the files of ``writers`` into ``directory`` so a load sees all or none.

    Args:
        directory: Target directory (created). Files of the same names are replaced; others are kept.
        weights: The tensors of ``model.safetensors``.
        *writers: Functions that write the other files (``config.json``, ``policy.json``, tokenizer, ...) into
            the staging directory they are given.

    Returns:
        The directory.
    """
    from safetensors.torch import save_file

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target))
    try:
        for write in writers:
            write(staging)
        names = sorted(p.name for p in staging.iterdir() if p.is_file())
        manifest = {name: _sha256(staging / name) for name in names}
        save_file(weights, str(staging / WEIGHTS_NAME), metadata={"format": "pt", MANIFEST_KEY: json.dumps(manifest)})
        for name in [WEIGHTS_NAME, *names]:  # the weights first: from then on they vouch for the rest
            os.chmod(staging / name, _default_file_mode())  # safetensors writes 0600; other files follow the umask
            os.replace(staging / name, target / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def remove_stale_staging(directory: Path) -> None:
    """Removes ``.jat-save-*`` folders that a killed save left in ``directory``."""
    for stale in directory.glob(f"{STAGING_PREFIX}*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def check_checkpoint_files(directory: Path) -> None:
    """Refuses a checkpoint whose files were not all saved together with its ``model.safetensors``.

    Args:
        directory: The checkpoint directory.

    Raises:
        ValueError: A file listed in the weights' metadata is missing or has other content.
    """
    manifest = _read_manifest(directory / WEIGHTS_NAME)
    for name, digest in manifest.items():
        path = directory / name
        if not path.is_file() or _sha256(path) != digest:
            state = "is missing" if not path.is_file() else "is not the one saved with these weights"
            raise ValueError(
                f"{directory} is an incomplete checkpoint: {name} {state}. A save was interrupted (or files were "
                "copied in from another checkpoint); save it again or restore a complete copy."
            )


def _read_manifest(weights: Path) -> dict[str, str]:
    from safetensors import SafetensorError, safe_open

    if not weights.is_file():
        return {}  # reported by the weights load with its own message
    try:
        with safe_open(str(weights), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(
            f"{weights} is not a readable safetensors file ({err}); it may be truncated or corrupt."
        ) from err
    if MANIFEST_KEY not in metadata:
        return {}  # written by jat-policy 0.1.0 or by another tool
    try:
        manifest = json.loads(metadata[MANIFEST_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(f"{weights}: the {MANIFEST_KEY} metadata is not valid JSON ({err}).") from err
    if not isinstance(manifest, dict):
        raise ValueError(f"{weights}: the {MANIFEST_KEY} metadata is a {type(manifest).__name__}, not a mapping.")
    return manifest


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _default_file_mode() -> int:
    """The mode ``open()`` gives a new file here: 0666 less the process umask."""
    umask = os.umask(0)  # the only portable way to read the umask is to set it
    os.umask(umask)
    return 0o666 & ~umask


# --------------------------------------------------------------------------------------------------
# Tokenizer and processor_config.json
# --------------------------------------------------------------------------------------------------


def load_tokenizer(name_or_path: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer from a local directory, the HF cache or the Hub; fail fast and clearly when offline."""
    from huggingface_hub import constants
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    local = Path(name_or_path).is_dir()
    # A checkpoint directory's config.json has model_type "jat", which AutoTokenizer does not know; a saved
    # fast tokenizer (tokenizer.json) loads directly.
    auto = PreTrainedTokenizerFast if local and (Path(name_or_path) / "tokenizer.json").is_file() else AutoTokenizer
    try:  # the cache first: no network call when the files are already here
        tokenizer = auto.from_pretrained(str(name_or_path), local_files_only=True)
    except (OSError, ValueError) as cached_error:
        if local or constants.HF_HUB_OFFLINE:
            where = "the directory" if local else "the Hugging Face cache (HF_HUB_OFFLINE is set)"
            raise OSError(
                f"Could not load a tokenizer from {str(name_or_path)!r}: not found in {where}. Pass a directory "
                f"written by JatProcessor.save_pretrained, or use JatProcessor() for the offline default "
                f"tokenizer. ({cached_error})"
            ) from cached_error
        try:
            if not hub_reachable():  # huggingface_hub would retry for about a minute before giving up
                raise OSError(f"cannot reach {constants.ENDPOINT}")
            tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
        except (OSError, ValueError) as error:
            raise OSError(
                f"Could not load the tokenizer {str(name_or_path)!r} from the Hugging Face Hub (no network, or "
                f"not a tokenizer repository). Use JatProcessor() for the offline default tokenizer. ({error})"
            ) from error
    if tokenizer.pad_token is None:  # GPT-2 has none; the reference pads with eos (50256)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connection to the Hub endpoint, so offline machines fail in seconds (proxies: assume reachable)."""
    import os
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def read_processor_config(pretrained_name_or_path: str | Path) -> dict[str, Any]:
    """Settings from ``processor_config.json`` (local directory or HF cache); unknown keys are ignored."""
    path = Path(pretrained_name_or_path) / PROCESSOR_CONFIG_NAME
    if not path.is_file():
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(str(pretrained_name_or_path), PROCESSOR_CONFIG_NAME, local_files_only=True))
        except Exception:  # noqa: BLE001 - no config file: defaults apply
            return {}
    data = json.loads(path.read_text())
    known = ("model_max_length", "image_size", "patch_size", "mission_length")
    return {key: data[key] for key in known if key in data}


# --------------------------------------------------------------------------------------------------
# policy.json: spaces <-> JSON (never pickle)
# --------------------------------------------------------------------------------------------------


def _json_number(x: float) -> float | str:
    return str(float(x)) if not np.isfinite(x) else float(x)  # "inf" / "-inf" / "nan": strict JSON has none


def _json_array(array: np.ndarray) -> Any:
    flat = array.reshape(-1)
    if flat.size and bool(np.all(flat == flat[0])):
        return _json_number(flat[0]) if array.dtype.kind == "f" else int(flat[0])  # one value broadcast
    return [_json_number(v) if array.dtype.kind == "f" else int(v) for v in flat]


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """Describes a Gymnasium space as JSON-serialisable data (for ``policy.json``).

    Supported: ``Box``, ``Discrete``, ``MultiDiscrete``, ``MultiBinary``, ``Text`` and ``Dict`` of those.

    Args:
        space: The space.

    Returns:
        A dict that :func:`space_from_json` turns back into an equal space.

    Example:
        >>> from gymnasium import spaces
        >>> space_to_json(spaces.Discrete(3))
        {'type': 'Discrete', 'n': 3, 'start': 0}
    """
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).name,
            "low": _json_array(space.low),
            "high": _json_array(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
            "dtype": np.dtype(space.dtype).name,
        }
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": list(space.shape)}
    if isinstance(space, spaces.Text):
        charset = "".join(sorted(space.character_set))
        return {"type": "Text", "max_length": space.max_length, "min_length": space.min_length, "charset": charset}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {key: space_to_json(sub) for key, sub in space.spaces.items()}}
    raise ValueError(
        f"Cannot describe {space} in policy.json: supported spaces are Box, Discrete, MultiDiscrete, MultiBinary, "
        "Text and Dict."
    )


def _from_json_array(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    array = np.array([float(v) for v in value] if isinstance(value, list) else float(value), dtype=np.float64)
    return np.broadcast_to(array, shape).reshape(shape).astype(dtype)


def space_from_json(data: dict[str, Any]) -> spaces.Space:
    """Rebuilds a space written by :func:`space_to_json`.

    Args:
        data: The JSON description.

    Returns:
        The space.
    """
    kind = data.get("type")
    if kind == "Box":
        shape, dtype = tuple(data["shape"]), np.dtype(data["dtype"])
        low, high = _from_json_array(data["low"], shape, dtype), _from_json_array(data["high"], shape, dtype)
        return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(
            np.array(data["nvec"]), dtype=np.dtype(data.get("dtype", "int64")), start=np.array(data["start"])
        )
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    if kind == "Text":
        return spaces.Text(data["max_length"], min_length=data.get("min_length", 1), charset=data["charset"])
    if kind == "Dict":
        return spaces.Dict({key: space_from_json(sub) for key, sub in data["spaces"].items()})
    raise ValueError(f"Unknown space type {kind!r} in policy.json (expected Box, Discrete, ..., Dict).")


def read_json_object(path: Path, corrupt: str, expected: str) -> dict[str, Any]:
    """A JSON file that must hold an object; ``corrupt`` / ``expected`` finish the two error messages."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {corrupt}.") from err
    if not isinstance(data, dict):
        raise ValueError(
            f"{path} holds a JSON {type(data).__name__} ({str(data)[:40]!r}), expected an object{expected}."
        )
    return data


def read_policy_config(directory: Path) -> dict[str, Any] | None:
    """``policy.json`` with its spaces rebuilt (``None`` when there is none); any malformed field is a ValueError."""
    path = directory / POLICY_CONFIG_NAME
    if not path.is_file():
        return None
    meta = read_json_object(path, "the saved policy is corrupt", "; the saved policy is corrupt")
    if meta.get("format") != POLICY_FORMAT:
        raise ValueError(f"{path} has format {meta.get('format')!r}, expected {POLICY_FORMAT!r}.")
    for key in ("observation_space", "action_space"):
        if not isinstance(meta.get(key), dict):
            raise ValueError(
                f"{path} has no valid {key!r} (got {meta.get(key)!r}); pass {key}= to from_pretrained or save again."
            )
        try:
            meta[key] = space_from_json(meta[key])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"{path}: {key!r} does not describe a space ({type(err).__name__}: {err}).") from err
    window = meta.get("context_window")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise ValueError(f"{path}: context_window must be an integer >= 1 or null, got {window!r}.")
    return meta


def write_policy_config(
    directory: Path,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    context_window: int,
    processor: bool,
) -> None:
    """Writes ``policy.json``: the spaces, the context window and whether the processor files belong to this save.

    Args:
        directory: Where to write (a save's staging directory).
        observation_space: The policy's observation space.
        action_space: The policy's action space.
        context_window: ``W`` in timesteps.
        processor: Whether the processor (tokenizer) files are saved with it.
    """
    meta = {
        "format": POLICY_FORMAT,
        "observation_space": space_to_json(observation_space),
        "action_space": space_to_json(action_space),
        "context_window": context_window,
        "processor": processor,
    }
    (directory / POLICY_CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")


def saved_processor(directory: Path, meta: dict[str, Any] | None) -> bool:
    """Whether ``directory`` holds processor files saved with its weights.

    ``policy.json``'s ``processor`` flag decides (stale tokenizer files may remain from an older save); a
    checkpoint without ``policy.json`` has a processor when its files are there.
    """
    has_processor = meta.get("processor", True) if meta is not None else True
    return has_processor and any((directory / name).is_file() for name in PROCESSOR_FILES)

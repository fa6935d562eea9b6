"""Task registry: the 157 JAT RL tasks, the 4 text tasks and any task a user registers.

Every task has a :class:`TaskSpec`: its domain, the Gymnasium id :func:`jat_policy.make_env` builds, what the
agent observes and does, the reference's random/expert (and Atari human) scores, the paper's JAT score and the
training weights of the reference recipe.

Provenance of the numbers (raw scores, never normalised unless the field name says so):

- ``random_score`` / ``expert_score`` / ``human_score`` come from the reference's ``scores_dict.json``
  (``resources/task_scores.csv``). Expert = mean return of the Hub dataset's episodes; random = literature values
  for Atari and a uniform-random policy elsewhere. They were measured on ``reference_env_id`` (ALE v5, minigrid
  BabyAI v0, Meta-World **v2**, MuJoCo **v4**), which can differ from ``env_id`` (what we build today: Meta-World
  v3, Pusher-v5), so Meta-World and Pusher scores compare only approximately.
- ``paper_jat_score`` / ``paper_jat_normalized`` are the paper's Appendix A (``resources/paper_scores.csv``, whose
  upper-case names are mapped to ours here); the normalised score is expert-normalised.
- ``loss_weight`` / ``sample_weight`` follow the reference training script: MuJoCo 10 (pendulum 50,
  doublependulum 20), Meta-World 50, everything else 1; sample weight 10 for conceptual-captions, oscar and
  wikipedia, 1 otherwise.

This module is import-light (standard library only), so the Gymnasium ids ``jat/<task>`` can be registered
without importing any environment package.

Example:
    >>> from jat_policy.tasks import get_task, list_tasks
    >>> get_task("metaworld-reach").env_id
    'reach-v3'
    >>> len(list_tasks()), len(list_tasks("atari"))
    (157, 57)
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jat_policy.score_reference import ScoreReference

__all__ = [
    "DOMAINS",
    "RL_DOMAINS",
    "ScoreReference",
    "TaskSpec",
    "get_task",
    "list_tasks",
    "register_task",
    "resolve_tasks",
    "set_env_backend",
    "unregister_task",
]

# The one list of domains; data/ and evaluation/ import it. RL_DOMAINS: the domains of the JAT benchmark envs.
DOMAINS = ("atari", "babyai", "metaworld", "mujoco", "text", "user")
RL_DOMAINS = tuple(domain for domain in DOMAINS if domain not in ("text", "user"))
_MODALITIES = ("continuous", "discrete", "image", "text")
_ACTION_TYPES = ("discrete", "continuous")

# ALE game names (ale-py ids are ALE/<Name>-v5; several are irregular: Jamesbond, UpNDown, Riverraid, ...).
_ATARI_GAMES = {
    "alien": "Alien", "amidar": "Amidar", "assault": "Assault", "asterix": "Asterix", "asteroids": "Asteroids",
    "atlantis": "Atlantis", "bankheist": "BankHeist", "battlezone": "BattleZone", "beamrider": "BeamRider",
    "berzerk": "Berzerk", "bowling": "Bowling", "boxing": "Boxing", "breakout": "Breakout", "centipede": "Centipede",
    "choppercommand": "ChopperCommand", "crazyclimber": "CrazyClimber", "defender": "Defender",
    "demonattack": "DemonAttack", "doubledunk": "DoubleDunk", "enduro": "Enduro", "fishingderby": "FishingDerby",
    "freeway": "Freeway", "frostbite": "Frostbite", "gopher": "Gopher", "gravitar": "Gravitar", "hero": "Hero",
    "icehockey": "IceHockey", "jamesbond": "Jamesbond", "kangaroo": "Kangaroo", "krull": "Krull",
    "kungfumaster": "KungFuMaster", "montezumarevenge": "MontezumaRevenge", "mspacman": "MsPacman",
    "namethisgame": "NameThisGame", "phoenix": "Phoenix", "pitfall": "Pitfall", "pong": "Pong",
    "privateeye": "PrivateEye", "qbert": "Qbert", "riverraid": "Riverraid", "roadrunner": "RoadRunner",
    "robotank": "Robotank", "seaquest": "Seaquest", "skiing": "Skiing", "solaris": "Solaris",
    "spaceinvaders": "SpaceInvaders", "stargunner": "StarGunner", "surround": "Surround", "tennis": "Tennis",
    "timepilot": "TimePilot", "tutankham": "Tutankham", "upndown": "UpNDown", "venture": "Venture",
    "videopinball": "VideoPinball", "wizardofwor": "WizardOfWor", "yarsrevenge": "YarsRevenge", "zaxxon": "Zaxxon",
}  # fmt: skip

# minigrid level names; babyai-put-next is the S7N4 variant (as in the reference).
_BABYAI_LEVELS = {
    "action-obj-door": "ActionObjDoor", "blocked-unlock-pickup": "BlockedUnlockPickup", "boss-level": "BossLevel",
    "boss-level-no-unlock": "BossLevelNoUnlock", "find-obj-s5": "FindObjS5", "go-to": "GoTo",
    "go-to-door": "GoToDoor", "go-to-imp-unlock": "GoToImpUnlock", "go-to-local": "GoToLocal",
    "go-to-obj": "GoToObj", "go-to-obj-door": "GoToObjDoor", "go-to-red-ball": "GoToRedBall",
    "go-to-red-ball-grey": "GoToRedBallGrey", "go-to-red-ball-no-dists": "GoToRedBallNoDists",
    "go-to-red-blue-ball": "GoToRedBlueBall", "go-to-seq": "GoToSeq", "key-corridor": "KeyCorridor",
    "mini-boss-level": "MiniBossLevel", "move-two-across-s8n9": "MoveTwoAcrossS8N9", "one-room-s8": "OneRoomS8",
    "open": "Open", "open-door": "OpenDoor", "open-doors-order-n4": "OpenDoorsOrderN4",
    "open-red-door": "OpenRedDoor", "open-two-doors": "OpenTwoDoors", "pickup": "Pickup",
    "pickup-above": "PickupAbove", "pickup-dist": "PickupDist", "pickup-loc": "PickupLoc", "put-next": "PutNextS7N4",
    "put-next-local": "PutNextLocal", "synth": "Synth", "synth-loc": "SynthLoc", "synth-seq": "SynthSeq",
    "unblock-pickup": "UnblockPickup", "unlock": "Unlock", "unlock-local": "UnlockLocal",
    "unlock-pickup": "UnlockPickup", "unlock-to-unlock": "UnlockToUnlock",
}  # fmt: skip

# gymnasium MuJoCo names; the reference used v4 everywhere. Pusher-v4 only runs on mujoco<3, so we build v5.
_MUJOCO_ENVS = {
    "ant": "Ant", "doublependulum": "InvertedDoublePendulum", "halfcheetah": "HalfCheetah", "hopper": "Hopper",
    "humanoid": "Humanoid", "pendulum": "InvertedPendulum", "pusher": "Pusher", "reacher": "Reacher",
    "standup": "HumanoidStandup", "swimmer": "Swimmer", "walker": "Walker2d",
}  # fmt: skip
_MUJOCO_DEFAULT_VERSION = {"pusher": "v5"}

_LOSS_WEIGHTS = {"mujoco-pendulum": 50.0, "mujoco-doublependulum": 20.0}
_DOMAIN_LOSS_WEIGHTS = {"mujoco": 10.0, "metaworld": 50.0}
_TEXT_TASKS = {"conceptual-captions": 10.0, "ok-vqa": 1.0, "oscar": 10.0, "wikipedia": 10.0}  # -> sample weight

# Paper (Appendix A) names whose letters differ from ours once punctuation is dropped.
_PAPER_ALIASES = {
    ("atari", "montezumasrevenge"): "montezumarevenge",
    ("atari", "upanddown"): "upndown",
    ("babyai", "putnexts7n4"): "put-next",
    ("mujoco", "inverteddoublependulum"): "doublependulum",
    ("mujoco", "invertedpendulum"): "pendulum",
    ("mujoco", "humanoidstandup"): "standup",
    ("mujoco", "walker2d"): "walker",
}


@dataclass(frozen=True)
class TaskSpec:
    """Everything the library knows about one task.

    Attributes:
        name: Task name, ``<domain>-<task>`` for the JAT tasks (``"atari-pong"``), free-form for user tasks.
        domain: One of ``"atari"``, ``"babyai"``, ``"metaworld"``, ``"mujoco"``, ``"text"``, ``"user"``.
        env_id: The environment :func:`jat_policy.make_env` builds (a Gymnasium id; for Meta-World the v3 task
            name such as ``"reach-v3"``). ``None`` for text tasks and for user tasks made by a function.
        modality: Main observation modality: ``"continuous"``, ``"discrete"`` (BabyAI: the text mission rides
            along), ``"image"`` or ``"text"``.
        action_type: ``"discrete"`` or ``"continuous"``; ``None`` for text tasks.
        random_score: Raw mean return of a random policy (``None`` if unknown).
        expert_score: Raw mean return of the expert that made the data (``None`` if unknown).
        human_score: Raw human score (Atari only).
        paper_jat_score: The paper's raw JAT score (Appendix A).
        paper_jat_normalized: The paper's expert-normalised JAT score.
        loss_weight: Weight of this task's loss in the reference training recipe.
        sample_weight: Relative probability of sampling this task in the reference training recipe.
        random_std: Standard deviation of ``random_score`` across episodes, when known.
        expert_std: Standard deviation of ``expert_score`` across episodes, when known.
        reference_env_id: The environment the reference scores were measured on (e.g. ``"reach-v2"``,
            ``"Pusher-v4"``); equals ``env_id`` when nothing changed.

    Example:
        >>> from jat_policy.tasks import get_task
        >>> spec = get_task("atari-pong")
        >>> spec.env_id, spec.modality, spec.action_type, spec.random_score
        ('ALE/Pong-v5', 'image', 'discrete', -20.7)
    """

    name: str
    domain: str
    env_id: str | None
    modality: str
    action_type: str | None
    random_score: float | None = None
    expert_score: float | None = None
    human_score: float | None = None
    paper_jat_score: float | None = None
    paper_jat_normalized: float | None = None
    loss_weight: float = 1.0
    sample_weight: float = 1.0
    random_std: float | None = None
    expert_std: float | None = None
    reference_env_id: str | None = None

    @property
    def reference(self) -> ScoreReference | None:
        """The random/expert/human scores as the library's one score type; None without both random and expert."""
        if self.random_score is None or self.expert_score is None:
            return None
        return ScoreReference(
            self.random_score,
            self.expert_score,
            self.human_score,
            "registry",
            env_id=self.reference_env_id or self.env_id,
            origin="the JAT reference's scores_dict.json",
        )


_REGISTRY: dict[str, TaskSpec] = {}
# user tasks: how make_env builds them (a Gymnasium id or a function) and the keyword arguments to pass.
_USER_FACTORIES: dict[str, tuple[str | Callable[..., Any], dict[str, Any]]] = {}


def _float(value: str) -> float | None:
    return float(value) if value.strip() else None


def _read_csv(filename: str) -> list[dict[str, str]]:
    with resources.files("jat_policy.resources").joinpath(filename).open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _paper_scores() -> dict[tuple[str, str], dict[str, str]]:
    """Paper rows keyed by (domain, squashed task name); the paper writes e.g. "MONTEZUMA'S REVENGE"."""
    out = {}
    for row in _read_csv("paper_scores.csv"):
        domain, squashed = row["domain"], _squash(row["task"])
        out[(domain, _squash(_PAPER_ALIASES.get((domain, squashed), squashed)))] = row
    return out


def _ids(domain: str, short: str) -> tuple[str, str, str, str]:
    """(env_id, reference_env_id, modality, action_type) of a JAT RL task."""
    if domain == "atari":
        env_id = f"ALE/{_ATARI_GAMES[short]}-v5"
        return env_id, env_id, "image", "discrete"
    if domain == "babyai":
        env_id = f"BabyAI-{_BABYAI_LEVELS[short]}-v0"
        return env_id, env_id, "discrete", "discrete"
    if domain == "metaworld":
        return f"{short}-v3", f"{short}-v2", "continuous", "continuous"
    name = _MUJOCO_ENVS[short]
    return f"{name}-{_MUJOCO_DEFAULT_VERSION.get(short, 'v4')}", f"{name}-v4", "continuous", "continuous"


def _builtin_tasks() -> dict[str, TaskSpec]:
    paper = _paper_scores()
    tasks = {}
    for row in _read_csv("task_scores.csv"):
        name = row["task"]
        domain, short = name.split("-", 1)
        env_id, reference_env_id, modality, action_type = _ids(domain, short)
        p = paper.get((domain, _squash(short)), {})
        tasks[name] = TaskSpec(
            name=name,
            domain=domain,
            env_id=env_id,
            modality=modality,
            action_type=action_type,
            random_score=_float(row["random_mean"]),
            expert_score=_float(row["expert_mean"]),
            human_score=_float(row["human_mean"]),
            paper_jat_score=_float(p.get("jat_raw_mean", "")),
            paper_jat_normalized=_float(p.get("jat_normalized_mean", "")),
            loss_weight=_LOSS_WEIGHTS.get(name, _DOMAIN_LOSS_WEIGHTS.get(domain, 1.0)),
            sample_weight=1.0,
            random_std=_float(row["random_std"]),
            expert_std=_float(row["expert_std"]),
            reference_env_id=reference_env_id,
        )
    for name, sample_weight in _TEXT_TASKS.items():
        tasks[name] = TaskSpec(name, "text", None, "text", None, sample_weight=sample_weight)
    return tasks


_REGISTRY.update(_builtin_tasks())
_BUILTIN_NAMES = frozenset(_REGISTRY)


def get_task(name: str) -> TaskSpec:
    """Return the :class:`TaskSpec` of a task.

    Args:
        name: A task name such as ``"atari-pong"`` or a name given to :func:`register_task`.

    Returns:
        The task's spec.

    Raises:
        KeyError: If no such task exists (the message suggests close names).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(
            f"Unknown task {name!r}.{hint} See jat_policy.tasks.list_tasks(); tasks look like 'atari-pong', "
            "'babyai-go-to', 'metaworld-reach', 'mujoco-pendulum'."
        ) from None


def list_tasks(domain: str | None = None) -> list[str]:
    """List task names, in the reference's order (user tasks last).

    Args:
        domain: ``None`` for every task that has an environment (the 157 RL tasks and user tasks), a domain
            name (``"atari"``, ``"babyai"``, ``"metaworld"``, ``"mujoco"``, ``"text"``, ``"user"``) for that
            domain only, or ``"all"`` for everything including the 4 text tasks.

    Returns:
        Task names.

    Raises:
        ValueError: If ``domain`` is not a known domain.
    """
    if domain == "all":
        return list(_REGISTRY)
    if domain is None:
        return [name for name, spec in _REGISTRY.items() if spec.domain != "text"]
    if domain not in DOMAINS:
        raise ValueError(f"Unknown domain {domain!r}; expected None, 'all' or one of {DOMAINS}.")
    return [name for name, spec in _REGISTRY.items() if spec.domain == domain]


def resolve_tasks(names: str | Sequence[str], *, allow_unknown: bool = False) -> list[str]:
    """Expand domain keywords the way the reference scripts do, keeping order and dropping duplicates.

    This is the library's one task resolver: the trainer and :func:`jat_policy.evaluation.evaluate` call it.

    Args:
        names: Task names and/or domain keywords (``"atari"``, ``"babyai"``, ``"metaworld"``, ``"mujoco"``,
            ``"text"``, ``"user"``, ``"all"``), as a list or one comma-separated string.
        allow_unknown: Pass names the registry does not know through unchanged (Gymnasium ids, tasks of a
            local dataset) instead of raising.

    Returns:
        Task names.

    Raises:
        KeyError: If a name is neither a task nor a domain keyword (unless ``allow_unknown``).

    Example:
        >>> resolve_tasks("mujoco-ant,babyai")[:3]
        ['mujoco-ant', 'babyai-action-obj-door', 'babyai-blocked-unlock-pickup']
    """
    if isinstance(names, str):
        names = names.split(",")
    out: dict[str, None] = {}
    for name in filter(None, (n.strip() for n in names)):
        if name in DOMAINS or name == "all":
            out.update(dict.fromkeys(list_tasks(None if name == "all" else name)))
        elif allow_unknown and name not in _REGISTRY:
            out[name] = None
        else:
            out[get_task(name).name] = None
    return list(out)


_NAME_RE = re.compile(r"[A-Za-z0-9][\w.-]*")


def _check_new_name(name: str, overwrite: bool) -> None:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or re.search(r"-v\d+$", name):
        raise ValueError(
            f"Invalid task name {name!r}: use letters, digits, '-', '_' or '.', not ending in a version suffix "
            "such as '-v0' (it becomes the Gymnasium id 'jat/<name>')."
        )
    if name in _BUILTIN_NAMES:
        raise ValueError(f"{name!r} is a built-in JAT task and cannot be replaced; pick another name.")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"Task {name!r} is already registered; pass overwrite=True to replace it.")


def _check_choice(value: str | None, choices: tuple[str, ...], what: str) -> None:
    if value is not None and value not in choices:
        raise ValueError(f"{what} must be one of {choices}, got {value!r}.")


class _EnvBackend:
    """What :mod:`jat_policy.wrappers.registration` plugs in, so this module never imports the wrappers.

    Building an env (to infer a user task's modality) and the Gymnasium ids need gymnasium; keeping them behind
    this hook keeps tasks.py a standard-library leaf with no import cycle. ``import jat_policy`` installs it.
    """

    infer: Callable[[str], tuple[str, str]] | None = None
    on_register: Callable[[str], None] | None = None
    on_unregister: Callable[[str], None] | None = None


def set_env_backend(
    infer: Callable[[str], tuple[str, str]],
    on_register: Callable[[str], None],
    on_unregister: Callable[[str], None],
) -> None:
    """Install how user tasks are inspected and registered with Gymnasium (done by :mod:`jat_policy.wrappers`).

    Args:
        infer: ``task -> (modality, action_type)``, by building the task's env once.
        on_register: Called with a task name after :func:`register_task` adds it.
        on_unregister: Called with a task name after :func:`unregister_task` removes it.
    """
    _EnvBackend.infer, _EnvBackend.on_register, _EnvBackend.on_unregister = infer, on_register, on_unregister


def _infer_modality_and_actions(name: str) -> tuple[str, str]:
    if _EnvBackend.infer is None:
        raise ValueError(
            f"register_task({name!r}) needs modality= and action_type=, or `import jat_policy.wrappers` first so "
            "they can be inferred by building the env."
        )
    return _EnvBackend.infer(name)


def register_task(
    name: str,
    env_id: str | None = None,
    *,
    env_fn: Callable[..., Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    modality: str | None = None,
    action_type: str | None = None,
    random_score: float | None = None,
    expert_score: float | None = None,
    human_score: float | None = None,
    loss_weight: float = 1.0,
    sample_weight: float = 1.0,
    overwrite: bool = False,
) -> TaskSpec:
    """Add a user task, so ``make_env(name)``, ``gym.make("jat/<name>")`` and the scores work for it.

    The environment is built with ``gymnasium.make(env_id, **env_kwargs)`` (or ``env_fn(**env_kwargs)``) and
    turned into the JAT step dict by :func:`jat_policy.wrappers.wrap_env`.

    Args:
        name: New task name (becomes the Gymnasium id ``jat/<name>``).
        env_id: A registered Gymnasium id, e.g. ``"CartPole-v1"``.
        env_fn: Instead of ``env_id``, a function returning a ``gymnasium.Env``.
        env_kwargs: Keyword arguments for ``gymnasium.make`` / ``env_fn``.
        modality: ``"continuous"``, ``"discrete"`` or ``"image"``; inferred by building the env once if ``None``.
        action_type: ``"discrete"`` or ``"continuous"``; inferred with ``modality`` if ``None``.
        random_score: Optional raw random-policy score (enables normalised scores).
        expert_score: Optional raw expert score.
        human_score: Optional raw human score.
        loss_weight: Loss weight for training.
        sample_weight: Sampling weight for training.
        overwrite: Replace an existing user task of the same name.

    Returns:
        The new task's spec.

    Raises:
        ValueError: On a bad name, no/both of ``env_id`` and ``env_fn``, or an invalid modality/action type.

    Example:
        >>> from jat_policy.tasks import register_task, unregister_task
        >>> register_task("cartpole", "CartPole-v1", random_score=22.0, expert_score=500.0).modality
        'continuous'
        >>> unregister_task("cartpole")
    """
    _check_new_name(name, overwrite)
    if (env_id is None) == (env_fn is None):
        raise ValueError(f"register_task({name!r}) needs exactly one of env_id (a Gymnasium id) or env_fn.")
    _check_choice(modality, _MODALITIES[:3], "modality")
    _check_choice(action_type, _ACTION_TYPES, "action_type")
    previous = (_REGISTRY.get(name), _USER_FACTORIES.get(name))
    _USER_FACTORIES[name] = (env_id if env_id is not None else env_fn, dict(env_kwargs or {}))  # type: ignore[assignment]
    spec = TaskSpec(name, "user", env_id, modality or "continuous", action_type or "continuous")
    _REGISTRY[name] = spec
    try:
        if modality is None or action_type is None:
            inferred = _infer_modality_and_actions(name)
            modality, action_type = modality or inferred[0], action_type or inferred[1]
    except Exception:
        _restore(name, *previous)
        raise
    spec = TaskSpec(
        name=name,
        domain="user",
        env_id=env_id,
        modality=modality,
        action_type=action_type,
        random_score=random_score,
        expert_score=expert_score,
        human_score=human_score,
        loss_weight=float(loss_weight),
        sample_weight=float(sample_weight),
        reference_env_id=env_id,
    )
    _REGISTRY[name] = spec
    if _EnvBackend.on_register is not None:
        _EnvBackend.on_register(name)
    return spec


def _restore(name: str, spec: TaskSpec | None, factory: Any) -> None:
    if spec is None:
        _REGISTRY.pop(name, None)
        _USER_FACTORIES.pop(name, None)
    else:
        _REGISTRY[name], _USER_FACTORIES[name] = spec, factory


def unregister_task(name: str) -> None:
    """Remove a user task (and its ``jat/<name>`` Gymnasium id).

    Args:
        name: A name given to :func:`register_task`.

    Raises:
        ValueError: For a built-in task.
        KeyError: If no such task exists.
    """
    if name in _BUILTIN_NAMES:
        raise ValueError(f"{name!r} is a built-in JAT task and cannot be removed.")
    get_task(name)
    _restore(name, None, None)
    if _EnvBackend.on_unregister is not None:
        _EnvBackend.on_unregister(name)


def user_task_factory(name: str) -> tuple[str | Callable[..., Any], dict[str, Any]]:
    """Return how a user task's environment is built: ``(env_id or env_fn, env_kwargs)``.

    Args:
        name: A name given to :func:`register_task`.

    Returns:
        The Gymnasium id or function, and a copy of the keyword arguments.
    """
    factory, kwargs = _USER_FACTORIES[get_task(name).name]
    return factory, dict(kwargs)

"""Expert data collection: run an expert in wrapped envs and write episodes in the Hub's schema.

``collect`` runs ``expert(step_dict) -> action`` (see :mod:`jat_policy.data.experts` for the
protocol) for ``n_episodes`` episodes, optionally across worker processes, and writes a train/test
``DatasetDict`` plus ``jat_metadata.json`` (seeds, env id and versions, expert, reference scores)
to ``<out>/<task>/`` atomically.

Determinism: episode ``i`` is played with ``env.reset(seed=seed + i)`` and the expert's
``reset(env, seed + i)``. Episodes the expert fails (:class:`~jat_policy.data.experts.ExpertFailure`)
are dropped and counted; the dataset holds the first ``n_episodes`` successful indices, in index
order, so its content does not depend on the number of workers. The last ``test_fraction`` of
them form the test split (like the reference's MuJoCo data). The random reference episodes use
seeds ``seed + RANDOM_SEED_OFFSET + j``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import importlib.metadata
import math
import multiprocessing
import os
import pickle
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict
from datasets.exceptions import DatasetGenerationError

from jat_policy.data.experts import RandomExpert, expert_name, make_expert
from jat_policy.data.hub import push_to_hub
from jat_policy.data.rollout import EnvSource, EpisodeResult, init_worker, play, play_chunk
from jat_policy.data.schema import ACTION_COLUMNS, OBSERVATION_COLUMNS, EpisodeSchema, task_domain
from jat_policy.data.storage import StagedWrite, quiet_datasets
from jat_policy.data.validation import validate_dataset

RANDOM_SEED_OFFSET = 1_000_000
_SOURCE = "the collecting env's spaces"
FORMAT_VERSION = 1
_PACKAGES = ("gymnasium", "ale-py", "minigrid", "metaworld", "mujoco", "stable-baselines3", "datasets")


# ----------------------------------------------------------------------------------------------------------------
# one episode


def env_schema(env: Any) -> EpisodeSchema:
    """The dataset schema of a wrapped env: its step-dict keys and action space, with their sizes."""
    from gymnasium import spaces

    keys = env.observation_space.spaces
    observation_columns = tuple(column for key, column in OBSERVATION_COLUMNS.items() if key in keys)
    size = high = None
    if "continuous_observation" in keys:
        size = keys["continuous_observation"].shape[0] - 1  # the wrapper appends the previous reward
    elif "discrete_observation" in keys:
        space = keys["discrete_observation"]
        size, high = space.shape[0], int(np.max(space.start + space.nvec)) if space.shape[0] else None
    action_space = env.action_space
    if isinstance(action_space, spaces.Discrete):
        n = int(action_space.n)
        return EpisodeSchema(
            observation_columns, ACTION_COLUMNS["discrete"], size, num_actions=n, source=_SOURCE, observation_high=high
        )
    return EpisodeSchema(
        observation_columns,
        ACTION_COLUMNS["continuous"],
        size,
        int(action_space.shape[0]),
        source=_SOURCE,
        observation_high=high,
        action_low=_bound(action_space.low),
        action_high=_bound(action_space.high),
    )


def _bound(values: np.ndarray) -> tuple[float, ...] | None:
    """An action bound for the metadata: ``None`` when unbounded (JSON has no infinity)."""
    values = np.asarray(values, np.float64).reshape(-1)
    return None if not np.all(np.isfinite(values)) else tuple(float(v) for v in values)


# ----------------------------------------------------------------------------------------------------------------
# workers


class _Runner:
    """Plays episodes in this process or in a pool of worker processes, yielding results in index order.

    Episodes go to workers in chunks of consecutive indices (short BabyAI episodes take ~1 ms: one
    message per episode would cost more than the episode), a few chunks per worker in flight.
    """

    def __init__(
        self,
        source: EnvSource,
        env: Any,
        experts: dict[str, Any],
        workers: int,
        start_method: str,
        max_steps: int | None,
        quiet: bool,
    ):
        self.env, self.experts, self.workers = env, experts, workers
        self.max_steps, self.quiet = max_steps, quiet
        self.pool = None
        if workers > 1:
            context = multiprocessing.get_context(start_method)
            self.pool = context.Pool(workers, init_worker, (source, experts, max_steps, quiet))

    def close(self, ok: bool) -> None:
        if self.pool is not None:
            if ok:
                self.pool.close()
            else:
                self.pool.terminate()  # interrupted: stop the workers now
            self.pool.join()

    def _submit(self, key: str, jobs: list[tuple[int, int]]) -> Any:
        if self.pool is None:
            expert = self.experts[key]
            return _Done([play(self.env, expert, i, seed, self.max_steps, self.quiet) for i, seed in jobs])
        return self.pool.apply_async(play_chunk, (key, jobs))

    def run(self, key: str, seeds: Callable[[int], int], wanted: int, max_attempts: int) -> Iterator[EpisodeResult]:
        """Yields results (failures included) in index order until ``wanted`` succeeded or attempts run out."""
        pending: collections.deque[tuple[int, Any]] = collections.deque()
        window, chunk = (4 * self.workers, max(1, min(16, wanted // (8 * self.workers)))) if self.pool else (1, 1)
        next_index = succeeded = in_flight = 0
        while succeeded < wanted:
            while len(pending) < window and succeeded + in_flight < wanted and next_index < max_attempts:
                stop = min(next_index + min(chunk, wanted - succeeded - in_flight), max_attempts)
                pending.append(
                    (stop - next_index, self._submit(key, [(i, seeds(i)) for i in range(next_index, stop)]))
                )
                in_flight, next_index = in_flight + stop - next_index, stop
            if not pending:
                return
            size, handle = pending.popleft()
            in_flight -= size
            for result in handle.get():
                if succeeded == wanted:  # later results of the chunk are not needed
                    return
                succeeded += result.row is not None
                yield result


@dataclasses.dataclass
class _Done:
    results: list[EpisodeResult]

    def get(self) -> list[EpisodeResult]:
        return self.results


# ----------------------------------------------------------------------------------------------------------------
# collect


@dataclasses.dataclass
class CollectResult:
    """What :func:`collect` produced.

    Attributes:
        path: The dataset folder (``<out>/<task>``), or ``None`` when kept in memory.
        metadata: The content of ``jat_metadata.json`` (scores, seeds, env, expert, failures).
        dataset: The ``DatasetDict`` (train/test) when kept in memory; load it from ``path`` otherwise.
    """

    path: Path | None
    metadata: dict[str, Any]
    dataset: DatasetDict | None = None

    @property
    def expert_score(self) -> float:
        """Mean return of the collected episodes (train + test)."""
        return self.metadata["scores"]["expert"]["mean"]

    @property
    def random_score(self) -> float | None:
        """Mean return of the random policy (``None`` if not measured)."""
        return (self.metadata["scores"].get("random") or {}).get("mean")

    @property
    def success_rate(self) -> float | None:
        """Fraction of collected episodes the env reported as successful (``None`` if it reports none)."""
        return self.metadata["scores"].get("success_rate")

    @property
    def n_failed(self) -> int:
        """Episodes dropped because the expert failed."""
        return self.metadata["failed"]["count"]


@dataclasses.dataclass
class _Stats:
    """Per-episode numbers gathered while the rows stream into the dataset."""

    seeds: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    successes: list[bool | None] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    return_sum: float = 0.0  # running total for the progress bar: a mean over the list each episode is O(n^2)

    def add(self, result: EpisodeResult) -> None:
        if result.row is None:
            self.failures.append((result.seed, result.failure or "failed"))
            return
        self.seeds.append(result.seed)
        self.returns.append(result.episode_return)
        self.return_sum += result.episode_return
        self.lengths.append(result.length)
        self.successes.append(result.success)


def _score(returns: list[float]) -> dict[str, Any]:
    values = np.asarray(returns, dtype=np.float64)
    if not values.size:
        return {"mean": None, "std": None, "episodes": 0}
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "episodes": int(values.size),
    }


def _split_sizes(n_episodes: int, test_fraction: float) -> tuple[int, int]:
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction}: expected a fraction in [0, 1).")
    n_test = int(math.floor(n_episodes * test_fraction + 0.5))
    if test_fraction > 0 and n_episodes >= 2:
        n_test = max(n_test, 1)
    return n_episodes - n_test, n_test


def _resolve_source(task_or_env: Any, task: str | None, env_kwargs: dict[str, Any]) -> tuple[EnvSource, Any, str]:
    """(source for workers, env built here, dataset/task name)."""
    import gymnasium as gym

    if isinstance(task_or_env, str):
        source = EnvSource(task=task_or_env, env_kwargs=env_kwargs)
        return source, source.build(), task or task_or_env
    if task is None:
        raise ValueError("collect(env or env factory, ...) needs task= (the dataset's name, e.g. 'my-cartpole').")
    if isinstance(task_or_env, gym.Env):
        from jat_policy.wrappers import wrap_env

        return EnvSource(), wrap_env(task_or_env), task  # an instance cannot go to workers
    if callable(task_or_env):
        source = EnvSource(factory=task_or_env)
        return source, source.build(), task
    raise TypeError(f"task_or_env must be a task name, a gymnasium.Env or an env factory; got {type(task_or_env)}.")


def _package_versions() -> dict[str, str]:
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _env_metadata(env: Any, task: str) -> dict[str, Any]:
    env_id = env.spec.id if env.spec is not None else None
    try:
        from jat_policy.tasks import get_task

        env_id = get_task(task).env_id or env_id
    except KeyError:
        pass
    return {
        "id": env_id,
        "max_episode_steps": env.spec.max_episode_steps if env.spec is not None else None,
        "observation_space": str(env.observation_space),
        "action_space": str(env.action_space),
        "packages": _package_versions(),
    }


def _workers(workers: int, source: EnvSource, expert: Any, n_episodes: int) -> int:
    workers = (os.cpu_count() or 1) if workers <= 0 else workers
    workers = max(1, min(workers, n_episodes))
    if workers > 1 and source.task is None and source.factory is None:
        warnings.warn("collect: a gymnasium.Env instance cannot be sent to workers; using workers=1.", stacklevel=3)
        return 1
    if workers > 1:
        try:
            pickle.dumps((source, expert))
        except Exception as error:
            warnings.warn(
                f"collect: the expert or env factory cannot be pickled ({error}); using workers=1. Use a "
                "module-level function or class to collect in parallel.",
                stacklevel=3,
            )
            return 1
    return workers


def _build_split(
    stream: Iterator[EpisodeResult], count: int, schema: EpisodeSchema, cache_dir: Path, keep_in_memory: bool
) -> Dataset:
    features = schema.features()
    if count == 0:
        return Dataset.from_dict({column: [] for column in schema.columns}, features=features)

    def rows() -> Iterator[dict[str, Any]]:
        for _ in range(count):
            yield next(stream).row

    with quiet_datasets():
        try:
            return Dataset.from_generator(
                rows,
                features=features,
                cache_dir=str(cache_dir),
                keep_in_memory=keep_in_memory,
                fingerprint=uuid.uuid4().hex,  # never reuse a cached dataset, never hash the live generator
            )
        except DatasetGenerationError as error:  # surface what went wrong while playing, not datasets' wrapper
            raise (error.__cause__ or error) from None


def _successful(results: Iterator[EpisodeResult], stats: _Stats, bar: Any, wanted: int, attempts: int) -> Iterator:
    """Filters failed episodes out (counting them) and fails loudly when too few episodes succeeded."""
    for result in results:
        stats.add(result)
        if result.row is not None:
            bar.update(1)
            mean = stats.return_sum / len(stats.returns)
            bar.set_postfix(ret=f"{mean:.3g}", failed=len(stats.failures), refresh=False)
            yield result
    if len(stats.returns) < wanted:
        reasons = collections.Counter(reason for _, reason in stats.failures).most_common(3)
        raise RuntimeError(
            f"Only {len(stats.returns)} of {wanted} episodes succeeded in {attempts} attempts; most common "
            f"failures: {reasons}. Raise max_failures, relax the expert's budget, or check the expert."
        )


def collect(
    task_or_env: str | Any,
    expert: str | Callable[[dict[str, Any]], Any] | None = "auto",
    n_episodes: int = 100,
    *,
    out: str | os.PathLike | None = None,
    task: str | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    workers: int = 1,
    max_steps: int | None = None,
    random_episodes: int = 100,
    max_failures: int | None = None,
    format: str = "disk",
    overwrite: bool = False,
    push_to_hub_repo: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
    quiet_env: bool = True,
    start_method: str = "spawn",
) -> CollectResult:
    """Collects expert episodes into a train/test dataset in the Hub's schema, with reference scores.

    Args:
        task_or_env: A task name (``"babyai-go-to-red-ball"``) or Gymnasium id (``"CartPole-v1"``), both built
            with ``make_env``; a ``gymnasium.Env`` (wrapped with ``wrap_env``; runs in this process); or a
            picklable function returning one (can run in workers).
        expert: ``expert(step_dict) -> action`` (optional ``reset(env, seed)`` hook), or a name for
            :func:`~jat_policy.data.experts.make_expert`: ``"auto"``, ``"bot"``, ``"scripted"``, ``"random"``,
            a path to an SB3 ``.zip``.
        n_episodes: Successful episodes to keep (failed ones are dropped and replaced).
        out: Parent folder; the data goes to ``<out>/<task>/``. ``None`` keeps it in memory.
        task: Dataset name; defaults to ``task_or_env`` when that is a string.
        test_fraction: Share of episodes (the last ones) in the ``test`` split.
        seed: Episode ``i`` uses seed ``seed + i``.
        workers: Worker processes (``0``: all cores). Results do not depend on it. With ``"spawn"``, scripts
            calling ``collect`` must guard their entry point with ``if __name__ == "__main__":``.
        max_steps: Truncate episodes after this many steps (``None``: the env's limit).
        random_episodes: Random-policy episodes for the random reference score (0: skip).
        max_failures: Failed episodes tolerated before giving up (default: ``max(10, n_episodes)``).
        format: ``"disk"`` (``save_to_disk``) or ``"parquet"`` (Hub-style shards).
        overwrite: Replace an existing dataset at ``<out>/<task>/``.
        push_to_hub_repo: Also upload to this Hub dataset repo (config = task), e.g. ``"me/my-jat-data"``.
        env_kwargs: Passed to ``make_env`` (e.g. ``{"max_episode_steps": 100}``).
        progress: Show progress: a tqdm bar on a terminal, a plain line every 30 s otherwise.
        quiet_env: Silence stdout prints of envs and experts while playing.
        start_method: ``multiprocessing`` start method for workers.

    Returns:
        Where the data went, its metadata (scores, seeds, failures) and, in memory, the dataset.

    Example:
        >>> from jat_policy.data import collect, load_jat_dataset
        >>> result = collect("babyai-go-to-red-ball", "bot", n_episodes=20, out="data/")  # doctest: +SKIP
        >>> result.success_rate, result.expert_score, result.random_score  # doctest: +SKIP
        (1.0, 0.93, 0.05)
        >>> train = load_jat_dataset("babyai-go-to-red-ball", path="data/")  # doctest: +SKIP
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes={n_episodes}: collect at least one episode.")
    n_train, n_test = _split_sizes(n_episodes, test_fraction)
    stage = StagedWrite(out, task or str(task_or_env), overwrite) if out is not None else None  # fail before work
    source, env, name = _resolve_source(task_or_env, task, dict(env_kwargs or {}))
    expert = make_expert(expert, name)
    schema = env_schema(env)
    workers = _workers(workers, source, expert, n_episodes)
    max_failures = max(10, n_episodes) if max_failures is None else max_failures
    started = time.perf_counter()
    with _scratch(stage) as scratch:
        experts = {"expert": expert, "random": RandomExpert()}
        runner = _Runner(source, env, experts, workers, start_method, max_steps, quiet_env)
        ok = False
        try:
            dataset, stats = _collect_splits(
                runner, seed, n_train, n_test, max_failures, schema, scratch, progress, name, stage is None
            )
            random_returns = _random_returns(runner, expert, stats, seed, random_episodes, progress, name)
            ok = True
        finally:
            runner.close(ok)
            env.close()
        metadata = _metadata(name, env, expert, schema, stats, random_returns, seed, n_train, dict(
            workers=workers, max_steps=max_steps, seconds=round(time.perf_counter() - started, 3),
            steps=int(sum(stats.lengths)), test_fraction=test_fraction,
        ))  # fmt: skip
        for split in dataset:
            validate_dataset(dataset, task=name, split=split, schema=schema)
        if stage is None:
            return CollectResult(None, metadata, dataset)
        path = stage.commit(dataset, metadata, format)
    if push_to_hub_repo:
        push_to_hub(path, name, push_to_hub_repo)
    return CollectResult(path, metadata)


@contextlib.contextmanager
def _scratch(stage: StagedWrite | None) -> Iterator[Path]:
    """The staging folder's scratch space, or a temporary folder when the dataset stays in memory."""
    if stage is not None:
        with stage:
            yield stage.cache_dir
        return
    with tempfile.TemporaryDirectory(prefix="jat-collect-") as tmp:
        yield Path(tmp)


def _collect_splits(
    runner: _Runner,
    seed: int,
    n_train: int,
    n_test: int,
    max_failures: int,
    schema: EpisodeSchema,
    scratch: Path,
    progress: bool,
    name: str,
    keep_in_memory: bool,
) -> tuple[DatasetDict, _Stats]:
    from jat_policy.utils.progress import progress_bar

    wanted = n_train + n_test
    attempts = wanted + max_failures
    stats = _Stats()
    with progress_bar(wanted, f"collect {name}", "ep", enabled=progress) as bar:
        results = runner.run("expert", lambda i: seed + i, wanted, attempts)
        stream = _successful(results, stats, bar, wanted, attempts)
        train = _build_split(stream, n_train, schema, scratch, keep_in_memory)
        test = _build_split(stream, n_test, schema, scratch, keep_in_memory)
    return DatasetDict({"train": train, "test": test}), stats


def _random_returns(
    runner: _Runner, expert: Any, stats: _Stats, seed: int, episodes: int, progress: bool, name: str
) -> tuple[list[float], int | None]:
    """Returns of the random policy (reused when the expert is itself random) and their first seed."""
    if isinstance(expert, RandomExpert):
        return list(stats.returns), None
    if episodes <= 0:
        return [], None
    from jat_policy.utils.progress import progress_bar

    base = seed + RANDOM_SEED_OFFSET
    returns = []
    with progress_bar(episodes, f"random {name}", "ep", enabled=progress) as bar:
        for result in runner.run("random", lambda j: base + j, episodes, episodes):
            returns.append(result.episode_return)
            bar.update(1)
    return returns, base


def _metadata(
    name: str,
    env: Any,
    expert: Any,
    schema: EpisodeSchema,
    stats: _Stats,
    random: tuple[list[float], int | None],
    seed: int,
    n_train: int,
    collection: dict[str, Any],
) -> dict[str, Any]:
    from jat_policy.version import __version__

    successes = [s for s in stats.successes if s is not None]
    random_returns, random_seed = random
    return {
        "format_version": FORMAT_VERSION,
        "task": name,
        "domain": task_domain(name) or "user",
        "env": _env_metadata(env, name),
        "expert": {"name": expert_name(expert)},
        "schema": schema.to_dict(),
        "seeding": f"episode i: env.reset(seed={seed} + i); failed episodes dropped; random: seeds from {random_seed}",
        "base_seed": seed,
        "splits": {
            "train": {"episodes": n_train, "seeds": stats.seeds[:n_train]},
            "test": {"episodes": len(stats.seeds) - n_train, "seeds": stats.seeds[n_train:]},
        },
        "episode_returns": stats.returns,
        "episode_lengths": stats.lengths,
        "failed": {
            "count": len(stats.failures),
            "seeds": [s for s, _ in stats.failures],
            "reasons": dict(collections.Counter(reason for _, reason in stats.failures)),
        },
        "scores": {
            "expert": _score(stats.returns),
            "random": {**_score(random_returns), "seed_base": random_seed, "policy": "uniform random actions"},
            "success_rate": float(np.mean(successes)) if successes else None,
        },
        "collection": {
            **collection,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "jat_policy_version": __version__,
        },
    }

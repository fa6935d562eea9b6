"""Model cards: the ``README.md`` a trained checkpoint carries, in the Hugging Face format, and the Hub upload.

The card is ``huggingface_hub``'s :class:`~huggingface_hub.ModelCard`: YAML front matter (``library_name``,
``tags``, ``datasets``, ``base_model`` and the evaluation results as ``model-index``) above a Markdown body with
how to load the policy, what it was trained on and a table of the results. :func:`update_model_card` merges the
results of :func:`jat_policy.evaluation.evaluate` into it (``jat-policy evaluate --update-card``); results of a
task evaluated again replace the old ones, other tasks keep theirs.

The card is not listed in the weights' file manifest (:func:`jat_policy.checkpoint.write_checkpoint`): updating
it never makes a checkpoint "incomplete".
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from huggingface_hub import EvalResult, ModelCard

    from jat_policy.evaluation.results import EvaluationResult, TaskResult

__all__ = [
    "CARD_NAME",
    "LIBRARY_NAME",
    "HUB_DATASET",
    "push_to_hub",
    "read_model_card",
    "training_card",
    "update_model_card",
    "write_model_card",
    "write_training_card",
]

CARD_NAME = "README.md"
LIBRARY_NAME = "jat-policy"
HUB_DATASET = "jat-project/jat-dataset"
# Files a checkpoint uploads: what JatPolicy.from_pretrained downloads, plus the card (never pickles).
UPLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", CARD_NAME]
_EVAL_START, _EVAL_END = "<!-- jat-policy:evaluation -->", "<!-- /jat-policy:evaluation -->"
_TASK_TYPE = "reinforcement-learning"
_METRICS = ("mean_reward", "std_reward", "expert_normalized_score", "success_rate")


# --------------------------------------------------------------------------------------------------
# Writing a card
# --------------------------------------------------------------------------------------------------
def _is_hub_id(model: str) -> bool:
    from jat_policy.configuration import JatConfig

    return model not in JatConfig.preset_names() and not Path(model).exists() and model.count("/") == 1


def _dataset_rows(tasks: Sequence[str], data: str | os.PathLike | None) -> list[str]:
    """One Markdown row per task: its env, expert, episodes and reference scores (from ``jat_metadata.json``)."""
    from jat_policy.data.storage import read_metadata

    rows = []
    for task in tasks:
        meta = (read_metadata(Path(data) / task) if data is not None else None) or {}
        scores, splits = meta.get("scores", {}), meta.get("splits", {})
        expert, random = scores.get("expert", {}).get("mean"), scores.get("random", {}).get("mean")
        cells = [
            task,
            meta.get("env", {}).get("id") or "-",
            meta.get("expert", {}).get("name") or "-",
            str(splits.get("train", {}).get("episodes", "-")),
            "-" if expert is None else f"{expert:.4g}",
            "-" if random is None else f"{random:.4g}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _body(model_name: str, tasks: Sequence[str], data: str | os.PathLike | None, training: Mapping[str, Any]) -> str:
    source = f"`{HUB_DATASET}` (Hugging Face Hub)" if data is None else "datasets collected with `jat-policy collect`"
    lines = [
        f"# {model_name}",
        "",
        "A [JAT](https://arxiv.org/abs/2402.09844) (Jack of All Trades) policy trained by behaviour cloning with "
        f"[jat-policy](https://pypi.org/project/jat-policy/) on {', '.join(f'`{t}`' for t in tasks)}.",
        "",
        "## Usage",
        "",
        "```python",
        "from jat_policy import JatPolicy, make_env",
        "",
        f'env = make_env("{tasks[0]}")',
        'policy = JatPolicy.from_pretrained("<this checkpoint or repo id>", env.observation_space, env.action_space)',
        "obs, info = env.reset(seed=0)",
        "action, state = policy.predict(obs, episode_start=True)",
        "```",
        "",
        "## Training data",
        "",
        f"Expert demonstrations from {source}; scores are raw returns (undiscounted sums of env rewards).",
        "",
        "| task | env | expert | train episodes | expert return | random return |",
        "|---|---|---|---|---|---|",
        *_dataset_rows(tasks, data),
        "",
        "## Training",
        "",
        "| option | value |",
        "|---|---|",
        *(f"| {key} | `{value}` |" for key, value in training.items()),
        "",
        "## Evaluation",
        "",
        _EVAL_START,
        _EVAL_END,
        "",
    ]
    return "\n".join(lines)


def training_card(
    tasks: Sequence[str],
    data: str | os.PathLike | None,
    model: str,
    *,
    model_name: str,
    training: Mapping[str, Any] | None = None,
    env_ids: Iterable[str] = (),
) -> ModelCard:
    """The card of a freshly trained checkpoint: what it learned from and how, with no results yet.

    Args:
        tasks: Task names trained on.
        data: Folder of the local datasets (``<data>/<task>/``), or None for the Hub's jat-dataset.
        model: The preset trained from scratch or the checkpoint fine-tuned (a Hub id becomes ``base_model``).
        model_name: Name of the model in ``model-index``.
        training: Training settings shown in the card (steps, batch size, learning rate...).
        env_ids: Gymnasium ids of the tasks' envs (added to the tags).

    Returns:
        The card; :func:`write_model_card` writes it.
    """
    from huggingface_hub import ModelCard, ModelCardData

    domains = sorted({task.split("-", 1)[0] for task in tasks if "-" in task})
    tags = [_TASK_TYPE, "behaviour-cloning", "jat", LIBRARY_NAME, *domains, *tasks, *env_ids]
    data_card = ModelCardData(
        library_name=LIBRARY_NAME,
        license="apache-2.0",
        pipeline_tag=_TASK_TYPE,
        tags=list(dict.fromkeys(tags)),
        # Hub dataset ids; local datasets go by their task name (the jat-dataset's config names)
        datasets=[HUB_DATASET] if data is None else list(tasks),
        base_model=model if _is_hub_id(model) else None,
        model_name=model_name,
    )
    body = _body(model_name, tasks, data, {"model": model, **(training or {})})
    card = ModelCard(f"---\n{data_card.to_yaml()}\n---\n\n{body}")
    _render_results(card)
    return card


def write_training_card(directory: str | os.PathLike, options: Any, tasks: Sequence[str]) -> Path:
    """Writes the card of a checkpoint just trained with ``options`` (a :class:`~jat_policy.trainers.bc.TrainOptions`).

    Args:
        directory: The checkpoint directory (``<output_dir>/final``).
        options: The training options (data, model and the settings shown in the card).
        tasks: The task names trained on (domain keywords expanded).

    Returns:
        The card's path.
    """
    from jat_policy.tasks import get_task

    env_ids = []
    for task in tasks:
        try:
            env_ids.append(get_task(task).env_id)
        except KeyError:  # a task only the dataset knows
            continue
    shown = ("max_steps", "per_device_batch_size", "gradient_accumulation_steps", "learning_rate", "window", "seed")
    training = {name: getattr(options, name) for name in shown}
    name = "jat-" + "-".join(tasks) if len(tasks) <= 3 else Path(options.output_dir).resolve().name
    card = training_card(tasks, options.data, options.model, model_name=name, training=training,
                         env_ids=[e for e in env_ids if e])  # fmt: skip
    return write_model_card(directory, card)


def write_model_card(directory: str | os.PathLike, card: ModelCard) -> Path:
    """Writes ``card`` as ``<directory>/README.md`` in one step (a temporary file, then a rename).

    Args:
        directory: The checkpoint directory.
        card: The card.

    Returns:
        The card's path.
    """
    path = Path(directory) / CARD_NAME
    handle, tmp = tempfile.mkstemp(prefix=".README-", suffix=".md", dir=path.parent)
    os.close(handle)
    try:
        card.save(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def read_model_card(directory: str | os.PathLike) -> ModelCard:
    """Reads ``<directory>/README.md`` (a ``FileNotFoundError`` saying how to make one if absent)."""
    from huggingface_hub import ModelCard

    path = Path(directory) / CARD_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory} has no {CARD_NAME} model card: `jat-policy train` writes one into final/; for another "
            "checkpoint write one with jat_policy.model_card.training_card + write_model_card."
        )
    return ModelCard.load(path)


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------
def _eval_results(result: TaskResult, settings: Mapping[str, Any]) -> list[EvalResult]:
    from huggingface_hub import EvalResult

    def metric(kind: str, value: float, args: dict[str, Any] | None = None) -> EvalResult:
        return EvalResult(
            task_type=_TASK_TYPE,
            task_name="Reinforcement Learning",
            dataset_type=result.env_spec_id or result.env_id or result.task,
            dataset_name=result.task,
            # model-index tells results apart by (task type, dataset type, config...), not by name: two tasks on
            # one env (a user task wrapping CartPole-v1, and CartPole-v1) differ by their config, the task name
            dataset_config=result.task,
            metric_type=kind,
            metric_name=kind.replace("_", " "),
            metric_value=round(float(value), 6),
            metric_args=args,
        )

    episodes = {
        "episodes": len(result.returns),
        "seed": settings.get("seed"),
        "deterministic": settings.get("deterministic"),
    }
    out = [metric("mean_reward", result.mean_return, episodes), metric("std_reward", float(result.returns.std()))]
    norm, ref = result.expert_normalized, result.reference
    if norm.scores is not None and ref is not None:
        reference = {"random": ref.random, "expert": ref.expert, "source": ref.source}
        if getattr(ref, "env_id", None):  # the env version the references were measured on (v2 vs v3)
            reference["measured_on"] = ref.env_id
        out.append(metric("expert_normalized_score", float(norm.scores.mean()), reference))
    if result.successes is not None:
        definition = getattr(result, "success_definition", None)
        out.append(
            metric("success_rate", float(result.successes.mean()), {"definition": definition} if definition else None)
        )
    return out


def _results_table(results: Sequence[EvalResult]) -> str:
    if not results:
        return "No results yet: `jat-policy evaluate --model <this checkpoint> --tasks ... --update-card` adds them."
    by_task: dict[str, dict[str, EvalResult]] = {}
    for r in results:
        by_task.setdefault(r.dataset_name, {})[r.metric_type] = r
    lines = [
        "| task | env | episodes | return (mean ± std) | expert-normalised | reference (random, expert, source) "
        "| success |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, metrics in by_task.items():
        mean, std = metrics.get("mean_reward"), metrics.get("std_reward")
        norm, success = metrics.get("expert_normalized_score"), metrics.get("success_rate")
        ref = (norm.metric_args or {}) if norm else {}
        cells = [
            task,
            (mean or std or norm).dataset_type,
            str((mean.metric_args or {}).get("episodes", "-")) if mean else "-",
            f"{mean.metric_value:.4g} ± {std.metric_value:.3g}" if mean and std else "-",
            f"{norm.metric_value:.3f}" if norm else "undefined",
            f"{ref['random']:.4g}, {ref['expert']:.4g}, {ref['source']} ({ref.get('measured_on') or '?'})"
            if ref
            else "-",
            f"{success.metric_value:.0%}" if success else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Raw returns are undiscounted sums of env rewards; expert-normalised = (return - random) / "]
    lines[-1] += "(expert - random)."
    return "\n".join(lines)


def _render_results(card: ModelCard) -> None:
    """Rewrites the body's evaluation section from the card's ``model-index`` results."""
    start, end = card.text.find(_EVAL_START), card.text.find(_EVAL_END)
    section = f"{_EVAL_START}\n{_results_table(card.data.eval_results or [])}\n{_EVAL_END}"
    if start < 0 or end < start:  # a hand-written card: append the section
        card.text = card.text.rstrip("\n") + f"\n\n## Evaluation\n\n{section}\n"
    else:
        card.text = card.text[:start] + section + card.text[end + len(_EVAL_END) :]


def update_model_card(directory: str | os.PathLike, result: EvaluationResult) -> Path:
    """Merges an evaluation's results into ``<directory>/README.md`` (``model-index`` and the results table).

    Args:
        directory: A checkpoint directory with a card (``jat-policy train`` writes one).
        result: What :func:`jat_policy.evaluation.evaluate` returned.

    Returns:
        The card's path.
    """
    card = read_model_card(directory)
    fresh = [r for task in result.tasks.values() for r in _eval_results(task, result.settings)]
    kept = [r for r in card.data.eval_results or [] if r.dataset_name not in result.tasks]
    card.data.eval_results = kept + fresh
    if not card.data.model_name:
        card.data.model_name = Path(directory).resolve().name
    _render_results(card)
    return write_model_card(directory, card)


# --------------------------------------------------------------------------------------------------
# Hub
# --------------------------------------------------------------------------------------------------
def push_to_hub(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload JAT policy with jat-policy",
    card: ModelCard | None = None,
) -> str:
    """Uploads a checkpoint directory with its model card to a Hub model repo (created if needed).

    Only the files a load needs (safetensors, JSON, tokenizer) and ``README.md`` are sent; trainer state,
    optimizer files and pickles stay local.

    Args:
        directory: A complete checkpoint (``final/`` of a training run, or ``JatPolicy.save``'s folder).
        repo_id: ``"user/name"``.
        private: Create the repo as private.
        token: Hub token (default: the logged-in one).
        commit_message: Commit message.
        card: A card to write first; default: the directory's own ``README.md`` (refused if there is none).

    Returns:
        The URL of the commit.
    """
    from huggingface_hub import HfApi

    from jat_policy.checkpoint import check_checkpoint_files

    directory = Path(directory)
    check_checkpoint_files(directory)
    if card is not None:
        write_model_card(directory, card)
    read_model_card(directory)  # a model without a card is not uploaded
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        repo_type="model",
        folder_path=str(directory),
        allow_patterns=UPLOAD_PATTERNS,
        commit_message=commit_message,
    )
    return str(getattr(info, "commit_url", info))

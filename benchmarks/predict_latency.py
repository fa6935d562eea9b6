"""Predict latency: JatPolicy's rolling KV cache vs (a) re-running the window vs (b) the reference's stepping.

Model: jat-small (192.7M parameters, random init, fp32, CPU). Per configuration (threads x envs) we time:

* ``ours``: ``JatPolicy.predict`` on a batch of envs, two new tokens ``[a_{t-1}, o_t]`` per env per step against
  the KV cache, the window rolling over (re-encoding its newest half) every ``W/2`` steps;
* ``(a) full window``: every step re-runs the whole context ``s(t)..t`` of every env (batched), without cache;
* ``(b) reference``: the reference's ``get_next_action`` scheme, one env at a time: four tokens
  ``[o_{t-1}, a_{t-1}, o_t, fake a_t]`` per step through the full model forward (observation decoder and, for
  discrete actions, the full-vocabulary head over every position), its cache trimmed as in the reference
  (keep the last ``max_pos - 2`` entries, drop the last two, keep the last ``context_window`` tokens; eval_jat
  used 256 tokens, 32 for Atari).

* ``floor``: the transformer's weight matmuls alone on the rows ours must process per step (2 per env, plus
  one rollover's ``W + 1`` re-encoded rows per env spread over ``W/2`` steps). On a CPU a step is bound by
  reading the weights, (b)'s 4 tokens read them as often as our 2, and at 16 envs (b) does no more FLOPs than
  we do, so ``ratio_bound = (b) / floor`` is the most any implementation of our scheme can gain there. On a
  GPU (``--device cuda``) the per-env sequential forwards and Python of (b) dominate instead.

Steady state means the window is full. Latency depends on tensor shapes only, so instead of minutes of warm-up
the states are synthesised with the shapes ``predict`` would have after ``t`` steps (random keys/values and
token embeddings; env ``i`` at step ``W + i * (W/2) / N`` so rollovers are spread as in a running VecEnv). Our
timings average over whole rollover cycles (one re-encode per env every ``W/2`` steps is included).

Results (machine, load, torch version, threads, config, ms per vector step, ratios measured in the same run) go
to ``benchmarks/results/predict_latency.json`` and ``.png``.

Usage::

    python benchmarks/predict_latency.py                      # ~5-10 min on a 2-core box
    python benchmarks/predict_latency.py --modality atari
    python benchmarks/predict_latency.py --quick              # tiny settings, a smoke test
    python benchmarks/predict_latency.py --device cuda        # on a GPU
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from machine_info import cpu_info  # benchmarks/ is on sys.path when a script here runs

from jat_policy.configuration import JatConfig
from jat_policy.modeling import JatModel, KVCache
from jat_policy.policy import JatPolicy, JatPolicyState, context_start

RESULTS = Path(__file__).parent / "results"


# --------------------------------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------------------------------


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", choices=["continuous", "atari"], nargs="+", default=["continuous", "atari"])
    parser.add_argument("--preset", default="jat-small")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--ours-steps", type=int, default=None, help="timed steps of ours (default: 16 or more)")
    parser.add_argument("--ref-steps", type=int, default=32, help="timed steps of (b) at b=1 (/ n_envs beyond)")
    parser.add_argument("--full-steps", type=int, default=2, help="timed steps of scheme (a) at b=1")
    parser.add_argument("--quick", action="store_true", help="jat-tiny and few steps (smoke test)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda (timings synchronise it)")
    parser.add_argument("--out", default=str(RESULTS / "predict_latency"))
    return parser.parse_args()


def spaces_for(modality: str) -> tuple[spaces.Dict, spaces.Space]:
    if modality == "continuous":  # Meta-World-like: 39 values + the previous reward, 4-d actions
        return spaces.Dict({"continuous_observation": spaces.Box(-np.inf, np.inf, (40,), np.float32)}), spaces.Box(
            -1, 1, (4,), np.float32
        )
    image = {
        "image_observation": spaces.Box(0, 255, (84, 84, 4), np.uint8),
        "reward": spaces.Box(-np.inf, np.inf, (1,), np.float32),
    }
    return spaces.Dict(image), spaces.Discrete(6)  # Pong-like


def observations(obs_space: spaces.Dict, n_envs: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for key, space in obs_space.spaces.items():
        if space.dtype == np.uint8:
            out[key] = rng.integers(0, 256, size=(n_envs, *space.shape), dtype=np.uint8)
        else:
            out[key] = rng.normal(size=(n_envs, *space.shape)).astype(np.float32)
    return out


def machine(device: torch.device) -> dict:
    return {
        "platform": platform.platform(),
        "cpu": cpu_info()[0] or platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, k: int, device: torch.device) -> float:
    """Milliseconds of one call ``fn(k)`` (the device's queued work included)."""
    synchronize(device)
    start = time.perf_counter()
    fn(k)
    synchronize(device)
    return (time.perf_counter() - start) * 1e3


def random_cache(model: JatModel, lengths: list[int], generator: torch.Generator) -> KVCache:
    """A KV cache with the shapes of contexts of ``lengths`` tokens (left-padded rows, positions from 0)."""
    config = model.config
    heads, head_dim = config.num_heads, config.hidden_size // config.num_heads
    rows, width = len(lengths), max(lengths)
    keys = [torch.randn(rows, heads, width, head_dim, generator=generator) for _ in range(config.num_layers)]
    values = [torch.randn(rows, heads, width, head_dim, generator=generator) for _ in range(config.num_layers)]
    positions = torch.zeros(rows, width, dtype=torch.long)
    valid = torch.zeros(rows, width, dtype=torch.bool)
    for i, n in enumerate(lengths):
        positions[i, width - n :] = torch.arange(n)
        valid[i, width - n :] = True
    return KVCache(keys, values, positions, valid)


# --------------------------------------------------------------------------------------------------
# Ours: JatPolicy.predict from a synthesised steady state
# --------------------------------------------------------------------------------------------------


def steady_state(policy: JatPolicy, next_steps: list[int], generator: torch.Generator) -> JatPolicyState:
    """The state ``predict`` would hold with env ``i`` about to see timestep ``next_steps[i]``."""
    window, hidden = policy.context_window, policy.model.config.hidden_size
    starts = [context_start(t - 1, window) for t in next_steps]
    lengths = [2 * (t - 1 - s) + 1 for t, s in zip(next_steps, starts, strict=True)]  # tokens o_s .. o_{t-1}
    tokens = tuple(tuple(torch.randn(n, hidden, generator=generator) * 0.02) for n in lengths)
    if isinstance(policy.action_space, spaces.Discrete):
        last = torch.randint(policy.action_space.n, (len(next_steps),), generator=generator)
    else:
        last = torch.zeros(len(next_steps), policy.action_space.shape[0])
    return JatPolicyState(
        window,
        np.array(next_steps, dtype=np.int64),
        np.array(starts, dtype=np.int64),
        tokens,
        last,
        random_cache(policy.model, lengths, generator),
    )


def make_ours(policy: JatPolicy, n_envs: int, steps: int, rng: np.random.Generator, gen: torch.Generator):
    """``step(k)`` = one ``predict`` on all envs, and the timed steps at which some env rolls over.

    Env ``i`` rolls over at timed step ``k_i``: at b=1 mid-measurement, with N envs every ``W/(2N)`` steps
    (a running VecEnv's spread), so ``steps`` (a multiple of ``W/(2N)``) holds their long-run share.
    """
    window, half = policy.context_window, policy.context_window // 2
    rolls = [steps // 2] if n_envs == 1 else [(i * half) // n_envs for i in range(n_envs)]
    # The warm-up call processes timestep t_i, timed step k processes t_i + 1 + k; rollovers at W + half.
    state = steady_state(policy, [window + half - 1 - k for k in rolls], gen)
    obs = [observations(policy.observation_space, n_envs, rng) for _ in range(4)]

    def step(k: int) -> None:
        nonlocal state
        _, state = policy.predict(obs[k % 4], state)

    step(0)  # first-call overheads (and the hand-made cache moved into the policy's storage)
    return step, sorted(k for k in rolls if k < steps)


# --------------------------------------------------------------------------------------------------
# (a) Re-run the whole window every step (batched over envs, no cache)
# --------------------------------------------------------------------------------------------------


def make_full_window(policy: JatPolicy, n_envs: int, steps: int, rng: np.random.Generator):
    model, window, half = policy.model, policy.context_window, policy.context_window // 2
    discrete = isinstance(policy.action_space, spaces.Discrete)
    # Context lengths spread over the steady-state cycle (W/2 + 1 .. W timesteps).
    lengths = [half + 1 + int((k + 0.5) * half / steps) for k in range(steps)]
    obs = observations(policy.observation_space, n_envs * window, rng)

    def step(k: int) -> None:
        length = lengths[k]
        with torch.no_grad():
            if "image_observation" in obs:
                frames = torch.from_numpy(obs["image_observation"][: n_envs * length]).to(model.device)
                frames = frames.view(n_envs, length, 84, 84, 4).permute(0, 1, 4, 2, 3).float() * (2 / 255) - 1
                rewards = torch.zeros(n_envs, length)
                obs_emb = model.embed_observations(rewards, image_observations=frames)  # (N, L, H)
            else:
                values = torch.from_numpy(obs["continuous_observation"][: n_envs * length]).to(model.device)
                values = values.view(n_envs, length, -1)
                obs_emb = model.embed_observations(values[..., -1], continuous_observations=values[..., :-1])
            if discrete:
                act_emb = model.embed_actions(discrete_actions=torch.zeros(n_envs, length, dtype=torch.long))
            else:
                act_emb = model.embed_actions(continuous_actions=torch.zeros(n_envs, length, 4))
            hidden, _ = model.transformer(model.interleave(obs_emb, act_emb))  # (N, 2L, H)
            last = hidden[:, -2]  # o_t
            if discrete:
                torch.nn.functional.linear(last, model.single_discrete_decoder.weight[: policy.action_space.n])
            else:
                model.decode_actions(last[:, None], 4)

    return step, lengths


# --------------------------------------------------------------------------------------------------
# (b) The reference's get_next_action: 4 tokens per step, one env at a time
# --------------------------------------------------------------------------------------------------


class ReferenceStepper:
    """One env stepped like the reference's ``get_next_action`` (jat/modeling_jat.py), on our JatModel."""

    def __init__(self, model: JatModel, discrete: bool, n_actions: int, cache_tokens: int, cache: KVCache) -> None:
        self.model, self.discrete, self.n_actions, self.cache_tokens = model, discrete, n_actions, cache_tokens
        self.cache = cache
        self.last = None

    def step(self, obs: dict[str, np.ndarray], reward: float) -> None:
        model = self.model
        fake = torch.zeros(1, 1, dtype=torch.long) if self.discrete else torch.zeros(1, 1, 4)
        current = self._tensors(obs, reward)
        if self.last is None:
            batch = {**current, "actions": fake}
        else:  # [o_{t-1}, a_{t-1}, o_t, fake a_t]
            batch = {k: torch.cat((self.last[k], current[k] if k != "actions" else fake), dim=1) for k in self.last}
        inputs = {"rewards": batch["rewards"]}
        inputs[self.obs_key] = batch["obs"]
        inputs["discrete_actions" if self.discrete else "continuous_actions"] = batch["actions"]
        past = self.cache
        positions = None
        if past is not None:  # GPT-Neo numbers new tokens from the cache length
            start = past.length
            positions = torch.arange(start, start + batch["obs"].shape[1] * 2)[None]
        with torch.no_grad():
            out = model(**inputs, cache=past, position_ids=positions, use_cache=True, return_loss=False)
        # Cache bookkeeping as the reference: last (max_pos - 2), drop o_t and the fake action, last cw tokens.
        keep = model.config.max_position_embeddings - 2
        cache = out.cache
        cache = _slice(cache, -keep, None)
        cache = _slice(cache, 0, cache.length - 2)
        cache = _slice(cache, -self.cache_tokens, None)
        cache.positions = torch.arange(cache.length)[None]  # GPT-Neo's implicit positions
        self.cache = cache
        logits = out.pred_actions[0, -1]
        if self.discrete:
            action = int(torch.multinomial(logits[: self.n_actions].softmax(-1), 1))
            self.last = {**current, "actions": torch.tensor([[action]])}
        else:
            self.last = {**current, "actions": logits[None, None]}

    def _tensors(self, obs: dict[str, np.ndarray], reward: float) -> dict[str, torch.Tensor]:
        if "image_observation" in obs:
            self.obs_key = "image_observations"
            frames = torch.from_numpy(obs["image_observation"]).to(self.model.device)
            frames = frames.permute(2, 0, 1).float() * (2 / 255) - 1
            value = frames[None, None]  # (1, 1, 4, 84, 84)
        else:
            self.obs_key = "continuous_observations"
            value = torch.from_numpy(obs["continuous_observation"][:-1]).to(self.model.device)  # (39,)
            value = value[None, None]  # (1, 1, 39)
        return {"obs": value, "rewards": torch.tensor([[reward]], dtype=torch.float32)}


def _slice(cache: KVCache, start: int | None, stop: int | None) -> KVCache:
    return KVCache(
        [k[:, :, start:stop] for k in cache.keys],
        [v[:, :, start:stop] for v in cache.values],
        cache.positions[:, start:stop],
        cache.valid[:, start:stop],
    )


def make_reference(policy: JatPolicy, n_envs: int, cache_tokens: int, rng: np.random.Generator, gen: torch.Generator):
    discrete = isinstance(policy.action_space, spaces.Discrete)
    n_actions = policy.action_space.n if discrete else 0
    steppers = [
        ReferenceStepper(
            policy.model, discrete, n_actions, cache_tokens, random_cache(policy.model, [cache_tokens], gen)
        )
        for _ in range(n_envs)
    ]
    obs = observations(policy.observation_space, n_envs, rng)
    single = [{k: v[i] for k, v in obs.items()} for i in range(n_envs)]
    for env, stepper in enumerate(steppers):  # one warm step each: the cache now holds full (o, a) pairs
        stepper.step(single[env], 0.0)

    def step(k: int) -> None:
        for env, stepper in enumerate(steppers):
            stepper.step(single[env], 0.0)

    return step


# --------------------------------------------------------------------------------------------------
# Floor: the weight matmuls alone
# --------------------------------------------------------------------------------------------------


def linear_floor_ms(model: JatModel, rows: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` ms of the transformer's weight matmuls alone, on ``rows`` token rows.

    Any scheme pushes its tokens through these weights; attention, encoders, caches and Python are not counted,
    so this bounds from below every step that processes ``rows`` tokens on this machine and thread count.
    """
    layers = [m for m in model.transformer.modules() if isinstance(m, torch.nn.Linear)]
    inputs = {m.in_features: torch.randn(rows, m.in_features) for m in layers}
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            best = min(best, timed(lambda _: [m(inputs[m.in_features]) for m in layers], 0, model.device))
    return best


def floors(policy: JatPolicy, n_envs: int) -> dict:
    """Lower bounds of ours (2 rows per env + the amortised re-encode) and of (b) (4 rows per env, per env)."""
    window = policy.context_window
    step = linear_floor_ms(policy.model, 2 * n_envs)
    reencode = linear_floor_ms(policy.model, window + 1)  # one env's rollover, every W/2 steps
    return {
        "ours_ms": step + n_envs * reencode / (window // 2),
        "ours_step_ms": step,
        "ours_reencode_ms": reencode,
        "reference_ms": n_envs * linear_floor_ms(policy.model, 4),
    }


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def summary(ms: list[float], **extra) -> dict:
    return {
        "steps": len(ms),
        "mean_ms": statistics.fmean(ms),
        "median_ms": statistics.median(ms),
        "max_ms": max(ms),
        "ms": [round(x, 2) for x in ms],
        **extra,
    }


def run_config(
    policy: JatPolicy, n_envs: int, threads: int, cache_tokens: int, args: argparse.Namespace, rng, gen
) -> dict:
    """Times the three schemes interleaved (round robin), so they share the same background load."""
    half, device = policy.context_window // 2, policy.device
    spacing = max(1, half // n_envs)
    steps = args.ours_steps or (6 if args.quick else 16 if n_envs == 1 else spacing * max(1, -(-16 // spacing)))
    ref_steps = 2 if args.quick else max(2, args.ref_steps // n_envs)
    full_steps = 1 if n_envs > 1 or args.quick else args.full_steps
    print(f"threads={threads} n_envs={n_envs}: ours {steps} / (b) {ref_steps} / (a) {full_steps} steps", flush=True)
    ours, rollovers = make_ours(policy, n_envs, steps, rng, gen)
    reference = make_reference(policy, n_envs, cache_tokens, rng, gen)
    full, lengths = make_full_window(policy, n_envs, full_steps, rng)
    rounds = max(steps, ref_steps)
    ref_rounds = set(np.linspace(0, rounds - 1, ref_steps).round().astype(int).tolist())
    full_at = np.linspace(0, rounds - 1, full_steps + 2)[1:-1].round().astype(int).tolist()
    full_rounds = dict(zip(full_at, range(full_steps), strict=True))
    times: dict[str, list[float]] = {"ours": [], "reference": [], "full_window": []}
    for k in range(rounds):
        if k < steps:
            times["ours"].append(timed(ours, k, device))
        if k in ref_rounds:
            times["reference"].append(timed(reference, k, device))
        if k in full_rounds:
            times["full_window"].append(timed(full, full_rounds[k], device))
    ours_ms = times["ours"]
    regular = [ms for k, ms in enumerate(ours_ms) if k not in rollovers]
    rolled = [ms for k, ms in enumerate(ours_ms) if k in rollovers]
    if n_envs == 1:  # one rollover per W/2 steps: amortise the measured one over a whole cycle
        mean = (statistics.fmean(regular) * (half - 1) + statistics.fmean(rolled)) / half
    else:  # the timed steps already hold the long-run share of rollovers
        mean = statistics.fmean(ours_ms)
    ours_summary = summary(ours_ms, rollover_steps=rollovers)
    ours_summary["regular_median_ms"] = statistics.median(regular) if regular else None  # steps without rollover
    ours_summary["rollover_mean_ms"] = statistics.fmean(rolled) if rolled else None
    ours_summary["mean_ms"] = mean  # steady-state average over rollover cycles
    run = {
        "threads": threads,
        "n_envs": n_envs,
        "ours": ours_summary,
        "full_window": summary(times["full_window"], context_timesteps=lengths),
        "reference": summary(times["reference"], cache_tokens=cache_tokens),
        "load_average": list(os.getloadavg()),
    }
    run["ratios"] = {key: run[key]["mean_ms"] / run["ours"]["mean_ms"] for key in ("full_window", "reference")}
    # The most any implementation of our scheme could gain over the measured (b) on this machine.
    run["floor"] = floors(policy, n_envs)
    run["ratio_bound"] = run["reference"]["mean_ms"] / run["floor"]["ours_ms"]
    print(
        f"  ours {mean:.1f} ms/step (regular median {ours_summary['regular_median_ms'] or 0:.1f}, rollover "
        f"{ours_summary['rollover_mean_ms'] or 0:.0f}) | (a) {run['full_window']['mean_ms']:.1f} "
        f"({run['ratios']['full_window']:.1f}x) | (b) {run['reference']['mean_ms']:.1f} "
        f"({run['ratios']['reference']:.1f}x) | weight-matmul floor of ours {run['floor']['ours_ms']:.1f} ms "
        f"(bound {run['ratio_bound']:.1f}x vs (b))",
        flush=True,
    )
    return run


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schemes = [
        ("ours", "ours: 2 tokens, all envs batched, KV cache"),
        ("full_window", "(a) re-run the window every step"),
        ("reference", "(b) reference: 4 tokens, one env at a time"),
    ]
    modalities = report["modalities"]
    fig, axes = plt.subplots(1, len(modalities), figsize=(6.5 * len(modalities), 4.8), squeeze=False)
    for ax, (modality, entry) in zip(axes[0], modalities.items(), strict=True):
        runs = entry["runs"]
        x, width = np.arange(len(runs)), 0.27
        for j, (key, label) in enumerate(schemes):
            bars = ax.bar(x + (j - 1) * width, [r[key]["mean_ms"] for r in runs], width, label=label)
            for bar, r in zip(bars, runs, strict=True):
                text = f"{r['ratios'][key]:.1f}x" if key != "ours" else f"{r[key]['mean_ms']:.0f}"
                ax.annotate(
                    text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=7
                )
        floor = [r["floor"]["ours_ms"] for r in runs]
        ax.scatter(x - width, floor, marker="_", s=400, color="black", zorder=3, label="floor of ours: weight matmuls")
        ax.set_yscale("log")
        ax.set_xticks(
            x,
            [
                f"{r['threads']} thread{'s' * (r['threads'] > 1)}\n{r['n_envs']} env{'s' * (r['n_envs'] > 1)}"
                for r in runs
            ],
        )
        ax.set_ylabel("ms per step of all envs (steady-state mean)")
        cfg = entry["config"]
        ax.set_title(
            f"{modality}: W={cfg['context_window']} steps (ours), reference cache {cfg['reference_cache_tokens']} "
            "tokens",
            fontsize=9,
        )
    cfg = report["config"]
    fig.suptitle(
        f"JatPolicy.predict latency, {cfg['preset']} ({cfg['parameters'] / 1e6:.1f}M params, random init, fp32, CPU)"
        f" on {report['machine']['cpu']} x{report['machine']['cpu_count']}, load avg "
        f"{report['load_average_start'][0]:.1f} (shared machine); labels: ms (ours) and slowdown vs ours",
        fontsize=9,
    )
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    args = parse()
    preset = "jat-tiny" if args.quick else args.preset
    device = torch.device(args.device)
    torch.set_default_device(device)  # synthesised caches, inputs and floors live on the device too
    rng, gen = np.random.default_rng(0), torch.Generator(device).manual_seed(0)
    torch.manual_seed(0)
    model = JatModel(JatConfig.from_preset(preset)).to(device).eval()
    report = {
        "benchmark": "predict_latency",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(device),
        "load_average_start": list(os.getloadavg()),
        "config": {
            "preset": preset,
            "parameters": sum(p.numel() for p in model.parameters()),
            "dtype": "float32",
            "hidden_size": model.config.hidden_size,
            "num_layers": model.config.num_layers,
            "max_position_embeddings": model.config.max_position_embeddings,
        },
        "method": (
            "Schemes timed round robin in one process. ours: JatPolicy.predict from a synthesised steady state "
            "(window full); mean = average over rollover cycles (at 1 env: (regular * (W/2 - 1) + rollover) / "
            "(W/2)). (a): batched full forward over the context, lengths spread over the cycle. (b): the "
            "reference's 4-token step per env, sequentially, cache of reference_cache_tokens tokens. floor: the "
            "transformer's weight matmuls alone (best of 3) on the rows ours processes per step (2 per env, plus "
            "the W + 1 re-encoded rows of a rollover amortised over W/2 steps); ratio_bound = (b) / floor is the "
            "most any implementation of our scheme could gain over the measured (b) on this machine."
        ),
        "modalities": {},
    }
    for modality in args.modality:
        obs_space, act_space = spaces_for(modality)
        policy = JatPolicy(model, obs_space, act_space)
        cache_tokens = 32 if modality == "atari" else 256  # eval_jat's context_window (tokens)
        entry = {
            "config": {
                "context_window": policy.context_window,
                "reference_cache_tokens": cache_tokens,
                "observation_space": str(obs_space),
                "action_space": str(act_space),
            },
            "runs": [],
        }
        report["modalities"][modality] = entry
        for threads in args.threads:
            torch.set_num_threads(threads)
            for n_envs in args.envs:
                print(f"[{modality}] ", end="")
                entry["runs"].append(run_config(policy, n_envs, threads, cache_tokens, args, rng, gen))
    report["load_average_end"] = list(os.getloadavg())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()

"""Predict latency: JatPolicy at fp32 / bf16 / int8 vs (a) re-running the window vs (b) the reference's stepping.

Model: jat-small (192.7M parameters, random init, CPU). Per configuration (threads x envs) we time, in one process so
that all share the same background load, segments of consecutive steps of each scheme in turn (``--schedule
consecutive``, as a control loop calls its one policy), or one step of each scheme in turn (``interleaved``: every
step starts with the other schemes' weights in the caches). On the 2-core Xeon the two gave the same ratios:

* ``ours-<precision>``: ``JatPolicy.predict(..., precision=...)`` on a batch of envs: the two new tokens
  ``[a_{t-1}, o_t]`` of every env go to both its contexts (the window and the next one, see jat_policy/rolling.py)
  in one forward pass, keys/values written in place. The timed steps cross several window rollovers.
* ``(a) full window`` (fp32): every step re-runs the whole context ``s(t)..t`` of every env (batched), no cache;
* ``(b) reference`` (fp32): the reference's ``get_next_action`` scheme, one env at a time: four tokens
  ``[o_{t-1}, a_{t-1}, o_t, fake a_t]`` per step through the full model forward, its cache trimmed as in the
  reference (eval_jat used 256 tokens, 32 for Atari).
* ``floor`` per precision: the bytes a step of ours must read (the transformer blocks' weights once, plus the keys
  and values it attends over) divided by the memory read bandwidth measured in the same run and thread count.

Latency depends on tensor shapes only, so instead of minutes of warm-up the states are synthesised with the shapes
``predict`` has in the steady state (window full, random keys/values): each timed segment starts a few steps before
env ``i``'s rollover (spread over the segment, as in a running VecEnv), and ``--segments`` segments are timed, so the
steps cross ``segments x N`` rollovers. Per scheme we report p50, p99 and mean over the timed steps (p99 of a few
dozen steps is close to their max).

Results (machine, CPU flags, load, torch version, threads, config, per-step ms, ratios measured in the same run) go
to ``benchmarks/results/predict_latency.json`` and ``.png``.

Usage::

    python benchmarks/predict_latency.py                      # continuous, 1/2 threads, 1/16 envs: ~5 min, 2 cores
    python benchmarks/predict_latency.py --modality continuous atari
    python benchmarks/predict_latency.py --quick              # tiny settings, a smoke test
    python benchmarks/predict_latency.py --device cuda --precisions fp32 bf16   # on a GPU (CUDA graphs)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from machine_info import cpu_info, key_flags  # benchmarks/ is on sys.path when a script here runs

from jat_policy.cache import KVCache, WindowBuffers
from jat_policy.configuration import JatConfig
from jat_policy.modeling import JatModel
from jat_policy.policy import JatPolicy, JatPolicyState, context_start
from jat_policy.precision import apply_precision, int8_engine
from jat_policy.rolling import attention_spans, plan_step

RESULTS = Path(__file__).parent / "results"
# Environment variables that cap torch / oneDNN / fbgemm kernels below the CPU's own ISA (recorded when set).
ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "FBGEMM_ENABLE_INSTRUCTIONS")


# --------------------------------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------------------------------


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", choices=["continuous", "atari"], nargs="+", default=["continuous"])
    parser.add_argument("--preset", default="jat-small")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"], choices=["fp32", "bf16", "int8"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--segments", type=int, default=3, help="timed segments, each crossing every env's rollover")
    parser.add_argument("--segment-steps", type=int, default=8, help="timed steps per segment (>= n_envs is used)")
    parser.add_argument("--ref-steps", type=int, default=16, help="timed steps of (b) at 1 env (/ n_envs beyond)")
    parser.add_argument("--full-steps", type=int, default=2, help="timed steps of scheme (a) at 1 env")
    parser.add_argument(
        "--schedule",
        choices=["consecutive", "interleaved"],
        default="consecutive",
        help="consecutive: each segment's steps of one scheme in a row, as a control loop calls one policy (schemes "
        "alternate between segments); interleaved: one step of each scheme in turn (every step finds the caches "
        "holding the other schemes' weights)",
    )
    parser.add_argument(
        "--int8-variants",
        action="store_true",
        help="also time int8 over an fp32 KV cache (its own is 16-bit) and int8 packed for the other engine "
        "(fbgemm / onednn), in the same run: the A/B behind jat_policy.precision's choices",
    )
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
    name, flags = cpu_info()
    return {
        "platform": platform.platform(),
        "cpu": name or platform.processor(),
        "cpu_count": os.cpu_count(),
        "cpu_key_flags": key_flags(flags),
        "cpu_flags": flags,
        # kernels capped below the CPU's own ISA (torch, oneDNN, fbgemm): the flags above are then not what ran
        "isa_caps": {v: os.environ[v] for v in ISA_CAPS if v in os.environ},
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
# Ours: JatPolicy.predict from synthesised steady states
# --------------------------------------------------------------------------------------------------


def steady_state(
    policy: JatPolicy, next_steps: list[int], generator: torch.Generator, buffers: WindowBuffers | None = None
) -> JatPolicyState:
    """The state ``predict`` would hold with env ``i`` about to see timestep ``next_steps[i]`` (window full).

    ``buffers``: reuse these (keeps a CUDA graph captured on them, and their finite keys/values) instead of
    allocating new ones.
    """
    window, half, n = policy.context_window, policy.context_window // 2, len(next_steps)
    starts = np.array([context_start(t - 1, window) for t in next_steps], dtype=np.int64)
    steps = np.array(next_steps, dtype=np.int64)
    primary_len = 2 * (steps - 1 - starts) + 1  # tokens o_s .. o_{t-1}
    secondary_len = np.where(steps - 1 >= starts + half, 2 * (steps - 1 - starts - half) + 1, 0)
    if buffers is None:  # random keys/values once; a refill later would only flush the weights out of the caches
        buffers = policy._allocate(n)
        for tensor in buffers.keys + buffers.values:
            tensor.copy_(torch.randn(tensor.shape, generator=generator, device=tensor.device))
    buffers.lengths = np.concatenate((primary_len, secondary_len))  # slot 0 primary, slot 1 secondary
    if isinstance(policy.action_space, spaces.Discrete):
        last = torch.randint(policy.action_space.n, (n,), generator=generator, device=policy.device)
    else:
        last = torch.zeros(n, policy.action_space.shape[0], device=policy.device)
    state = JatPolicyState(window, steps, starts, last, buffers, np.zeros(n, dtype=np.int64), policy.fingerprint)
    buffers.owner = state.token
    return state


class Ours:
    """``step(k)`` = one ``predict`` on all envs; ``reset()`` starts a segment (untimed) in which env ``i`` rolls over
    at step ``rolls[i]`` (spread over the segment as in a running VecEnv; mid-segment at 1 env)."""

    def __init__(self, policy: JatPolicy, n_envs: int, seg_steps: int, rng: np.random.Generator, gen) -> None:
        half = policy.context_window // 2
        spread = [(i * seg_steps) // n_envs + (seg_steps // 2 if n_envs == 1 else 0) for i in range(n_envs)]
        self.policy, self.gen, self.rolls = policy, gen, [min(k, half - 1) for k in spread]
        self.obs = [observations(policy.observation_space, n_envs, rng) for _ in range(4)]
        self.reset()
        for k in range(2):  # first-call overheads (and CUDA graph capture)
            self.step(k)
        self.reset()

    def reset(self) -> None:
        window, half = self.policy.context_window, self.policy.context_window // 2
        buffers = getattr(self, "state", None) and self.state.buffers
        next_steps = [window + half - k for k in self.rolls]  # env i rolls over at t = s + W = W + half
        self.state = steady_state(self.policy, next_steps, self.gen, buffers)

    def step(self, k: int) -> None:
        _, self.state = self.policy.predict(self.obs[k % 4], self.state)


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
# Floor: bytes read per step / measured memory bandwidth
# --------------------------------------------------------------------------------------------------


def read_bandwidth_gbs(device: torch.device, megabytes: int = 512, repeats: int = 5) -> float:
    """Best-of-``repeats`` read bandwidth (GB/s) of a ``torch.sum`` over ``megabytes`` of fp32 at this thread count."""
    data = torch.ones(megabytes * 2**20 // 4, device=device)
    best = min(timed(lambda _: data.sum(), 0, device) for _ in range(repeats))
    return data.numel() * 4 / best / 1e6


def weight_bytes(model: JatModel) -> int:
    """Bytes of the transformer blocks' weights as stored (int8 packed weights included), read once per step."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    total = 0
    for module in model.transformer.h.modules():
        if isinstance(module, DynamicQuantizedLinear):  # int8 weight + fp32 bias, packed in a child module
            weight, bias = module._weight_bias()
            total += weight.numel() * weight.element_size() + (0 if bias is None else bias.numel() * 4)
        else:
            total += sum(p.numel() * p.element_size() for p in module.parameters(recurse=False))
    return total


def kv_read_bytes(policy: JatPolicy, state: JatPolicyState) -> int:
    """Bytes of keys/values the next step attends over: per layer, each group of rows over its span of columns
    (:func:`jat_policy.rolling.attention_spans`, the very groups ``predict`` uses), keys and values."""
    buffers: WindowBuffers = state.buffers
    config = policy.model.config
    _, heads, _, head_dim = buffers.keys[0].shape
    plan = plan_step(state.steps, state.context_starts, state.primary, buffers.lengths, state.context_window)
    columns = 0
    for kind, layers in Counter(config.attention_layers).items():  # the spans depend on the layer's kind only
        window = config.window_size if kind == "local" else None
        spans = attention_spans(plan.lengths, window)
        columns += layers * sum((rows.stop - rows.start) * (stop - start) for rows, start, stop in spans)
    return 2 * columns * heads * head_dim * buffers.keys[0].element_size()


def floor_ms(policy: JatPolicy, state: JatPolicyState, bandwidth_gbs: float) -> dict:
    weights, kv = weight_bytes(policy.model), kv_read_bytes(policy, state)
    return {"weight_bytes": weights, "kv_bytes": kv, "ms": (weights + kv) / bandwidth_gbs / 1e6}


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def summary(ms: list[float], **extra) -> dict:
    return {
        "steps": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": statistics.fmean(ms),
        "max_ms": max(ms),
        "ms": [round(x, 2) for x in ms],
        **extra,
    }


def run_config(
    policies: dict, n_envs: int, threads: int, cache_tokens: int, args: argparse.Namespace, rng, gen
) -> dict:
    """Times every scheme by ``args.schedule`` (segments or steps in turn), so all share the background load."""
    fp32 = policies.get("fp32") or next(iter(policies.values()))
    device = fp32.device
    seg_steps = 3 if args.quick else max(args.segment_steps, n_envs)
    segments = 1 if args.quick else args.segments
    ref_steps = 2 if args.quick else max(2, args.ref_steps // n_envs)
    full_steps = 1 if n_envs > 1 or args.quick else args.full_steps
    print(
        f"threads={threads} n_envs={n_envs}: ours {segments}x{seg_steps} steps per precision / (b) {ref_steps} / "
        f"(a) {full_steps} steps",
        flush=True,
    )
    ours = {name: Ours(policy, n_envs, seg_steps, rng, gen) for name, policy in policies.items()}
    reference = make_reference(fp32, n_envs, cache_tokens, rng, gen)
    full, lengths = make_full_window(fp32, n_envs, full_steps, rng)
    rounds = segments * seg_steps
    ref_rounds = set(np.linspace(0, rounds - 1, ref_steps).round().astype(int).tolist())
    full_at = np.linspace(0, rounds - 1, full_steps + 2)[1:-1].round().astype(int).tolist()
    full_rounds = dict(zip(full_at, range(full_steps), strict=True))
    times: dict[str, list[float]] = {name: [] for name in ours} | {"reference": [], "full_window": []}
    if args.schedule == "interleaved":
        for k in range(rounds):
            for name, runner in ours.items():
                if k and k % seg_steps == 0:
                    runner.reset()  # untimed: the next segment starts before the next rollovers
                times[name].append(timed(runner.step, k, device))
            if k in ref_rounds:
                times["reference"].append(timed(reference, k, device))
            if k in full_rounds:
                times["full_window"].append(timed(full, full_rounds[k], device))
    else:
        for segment in range(segments):
            ks = range(segment * seg_steps, (segment + 1) * seg_steps)
            for name, runner in ours.items():
                runner.step(0)  # untimed, like the reset: this policy's weights into the caches
                runner.reset()
                times[name] += [timed(runner.step, k, device) for k in ks]
            refs = [k for k in ks if k in ref_rounds]
            if refs:
                reference(refs[0])  # untimed warm-up, as for ours
                times["reference"] += [timed(reference, k, device) for k in refs]
            times["full_window"] += [timed(full, full_rounds[k], device) for k in ks if k in full_rounds]
    run = {"threads": threads, "n_envs": n_envs, "load_average": list(os.getloadavg())}
    bandwidth = read_bandwidth_gbs(device)
    run["read_bandwidth_gbs"] = bandwidth
    run["reference"] = summary(times["reference"], cache_tokens=cache_tokens)
    run["full_window"] = summary(times["full_window"], context_timesteps=lengths)
    run["ours"] = {}
    for name, policy in policies.items():
        runner = ours[name]
        rolled = [k for k in range(rounds) if k % seg_steps in runner.rolls]
        entry = summary(times[name], rollover_steps=rolled, segments=segments)
        regular = [ms for k, ms in enumerate(times[name]) if k not in rolled]
        entry["rollover_mean_ms"] = statistics.fmean([times[name][k] for k in rolled]) if rolled else None
        entry["regular_p50_ms"] = float(np.percentile(regular, 50)) if regular else None
        entry["p99_over_p50"] = entry["p99_ms"] / entry["p50_ms"]
        entry["vs_reference"] = run["reference"]["mean_ms"] / entry["mean_ms"]
        entry["vs_full_window"] = run["full_window"]["mean_ms"] / entry["mean_ms"]
        runner.reset()
        entry["floor"] = floor_ms(policy, runner.state, bandwidth)
        run["ours"][name] = entry
        print(
            f"  ours-{name}: p50 {entry['p50_ms']:.1f} p99 {entry['p99_ms']:.1f} mean {entry['mean_ms']:.1f} ms "
            f"(rollover steps {entry['rollover_mean_ms'] or 0:.1f}), {entry['vs_reference']:.1f}x (b), "
            f"{entry['vs_full_window']:.1f}x (a), floor {entry['floor']['ms']:.1f} ms",
            flush=True,
        )
    print(
        f"  (a) {run['full_window']['mean_ms']:.1f} ms | (b) {run['reference']['mean_ms']:.1f} ms (p50 "
        f"{run['reference']['p50_ms']:.1f}) | read bandwidth {bandwidth:.1f} GB/s | load {run['load_average'][0]:.2f}",
        flush=True,
    )
    return run


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modalities = report["modalities"]
    fig, axes = plt.subplots(1, len(modalities), figsize=(7.5 * len(modalities), 5), squeeze=False)
    for ax, (modality, entry) in zip(axes[0], modalities.items(), strict=True):
        runs = entry["runs"]
        names = list(runs[0]["ours"])
        schemes = [(f"ours-{n}", lambda r, n=n: r["ours"][n]) for n in names]
        schemes += [
            ("(a) full window, fp32", lambda r: r["full_window"]),
            ("(b) reference, fp32", lambda r: r["reference"]),
        ]
        x, width = np.arange(len(runs)), 0.8 / len(schemes)
        for j, (label, get) in enumerate(schemes):
            stats = [get(r) for r in runs]
            p50 = np.array([s["p50_ms"] for s in stats])
            p99 = np.array([s["p99_ms"] for s in stats])
            pos = x + (j - (len(schemes) - 1) / 2) * width
            ax.bar(
                pos, p50, width, yerr=[np.zeros_like(p50), p99 - p50], capsize=2, label=label + " (p50, bar to p99)"
            )
            if label.startswith("ours"):
                floors = [get(r)["floor"]["ms"] for r in runs]
                ax.scatter(pos, floors, marker="_", s=150, color="black", zorder=3)
                for xi, r in zip(pos, runs, strict=True):
                    ax.annotate(
                        f"{get(r)['vs_reference']:.1f}x", (xi, get(r)["p99_ms"]), ha="center", va="bottom", fontsize=6
                    )
        ax.set_yscale("log")
        ax.set_xticks(x, [f"{r['threads']} thr, {r['n_envs']} env{'s' * (r['n_envs'] > 1)}" for r in runs])
        ax.set_ylabel("ms per step of all envs")
        cfg = entry["config"]
        ax.set_title(
            f"{modality}: W={cfg['context_window']} steps (ours), reference cache {cfg['reference_cache_tokens']} "
            "tokens; black ticks: floor (bytes read / bandwidth); labels: speed-up vs (b)",
            fontsize=8,
        )
    cfg = report["config"]
    fig.suptitle(
        f"JatPolicy.predict latency, {cfg['preset']} ({cfg['parameters'] / 1e6:.1f}M params, random init)\n"
        f"{report['machine']['cpu']} x{report['machine']['cpu_count']}, load avg {report['load_average_start'][0]:.1f}"
        f"-{report['load_average_end'][0]:.1f} (shared machine)",
        fontsize=9,
    )
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_policies(
    model: JatModel, obs_space, act_space, precisions: list[str], int8_variants: bool = False
) -> dict[str, JatPolicy]:
    """One policy per precision, each over its own converted copy of the same fp32 weights.

    ``int8_variants`` adds int8 over an fp32 KV cache (``int8-fp32kv``; its own is fp16 or bf16,
    :func:`~jat_policy.precision.kv_cache_dtype`) and ``int8-<the other engine>``.
    """
    import copy

    from jat_policy import precision as precision_module

    policies = {}
    for name in precisions:
        converted = apply_precision(copy.deepcopy(model), name) if name != "fp32" else model
        policies[name] = JatPolicy(converted, obs_space, act_space, precision=name, cuda_graph=None)
    if int8_variants and "int8" in policies:
        chosen = policies["int8"]
        other_kv = JatPolicy(chosen.model, obs_space, act_space, precision="int8", cuda_graph=None)
        allocate = other_kv._allocate

        def allocate_fp32(n_envs: int) -> WindowBuffers:  # the same buffers in fp32
            buffers = allocate(n_envs)
            keys, values = [k.float() for k in buffers.keys], [v.float() for v in buffers.values]
            return WindowBuffers(keys, values, buffers.lengths)

        other_kv._allocate = allocate_fp32
        policies["int8-fp32kv"] = other_kv
        other = "fbgemm" if int8_engine() == "onednn" else "onednn"  # x86's default runs fbgemm's kernels
        if other in torch.backends.quantized.supported_engines:
            chosen_engine = precision_module.int8_engine
            precision_module.int8_engine = lambda: other
            try:
                packed = apply_precision(copy.deepcopy(model), "int8")
            finally:
                precision_module.int8_engine = chosen_engine
            policies[f"int8-{other}"] = JatPolicy(packed, obs_space, act_space, precision="int8", cuda_graph=None)
    return policies


def main() -> None:
    args = parse()
    preset = "jat-tiny" if args.quick else args.preset
    device = torch.device(args.device)
    if device.type != "cpu":  # synthesised caches and inputs live on the device too
        # Not on the CPU, where it changes nothing but costs: torch.set_default_device installs a Python
        # TorchFunctionMode that every op then goes through (int8 jat-small, 1 env, 1 thread, 2-core AVX2 EPYC,
        # interleaved in one process: 26.2 ms a step with it, 19.9 ms without, 2026-12-07).
        torch.set_default_device(device)
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
            "precisions": args.precisions,
            "schedule": args.schedule,
            "hidden_size": model.config.hidden_size,
            "num_layers": model.config.num_layers,
            "max_position_embeddings": model.config.max_position_embeddings,
        },
        "method": (
            f"Schemes timed in one process, schedule {args.schedule!r} (consecutive: segments of consecutive steps "
            "of each scheme in turn, after one untimed step; interleaved: one step of each scheme in turn). "
            "ours-<precision>: JatPolicy.predict from synthesised steady "
            "states (window full), segments of steps that cross every env's rollover; p50/p99/mean over all timed "
            "steps. (a): fp32 batched full forward over the context, lengths spread over the cycle. (b): fp32 "
            "reference 4-token step per env, sequentially, cache of reference_cache_tokens tokens. floor: (bytes "
            "of the blocks' weights + keys/values attended over) / read bandwidth of a torch.sum over 512 MB at the "
            "same thread count (best of 5)."
        ),
        "modalities": {},
    }
    for modality in args.modality:
        obs_space, act_space = spaces_for(modality)
        policies = build_policies(model, obs_space, act_space, args.precisions, args.int8_variants)
        fp32 = policies.get("fp32") or next(iter(policies.values()))
        cache_tokens = 32 if modality == "atari" else 256  # eval_jat's context_window (tokens)
        entry = {
            "config": {
                "context_window": fp32.context_window,
                "reference_cache_tokens": cache_tokens,
                "observation_space": str(obs_space),
                "action_space": str(act_space),
                "cuda_graph": {name: p.cuda_graph for name, p in policies.items()},
                "kv_cache_dtype": {
                    name: str(p._allocate(1).keys[0].dtype).removeprefix("torch.") for name, p in policies.items()
                },
                "int8_engine": int8_engine() if "int8" in policies else None,
            },
            "runs": [],
        }
        report["modalities"][modality] = entry
        for threads in args.threads:
            torch.set_num_threads(threads)
            for n_envs in args.envs:
                print(f"[{modality}] ", end="")
                entry["runs"].append(run_config(policies, n_envs, threads, cache_tokens, args, rng, gen))
    report["load_average_end"] = list(os.getloadavg())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()

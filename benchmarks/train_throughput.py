"""Training throughput on CPU: JatModel vs a straightforward baseline, fp32 vs bf16 autocast.

One training iteration = forward + backward + AdamW step on a Meta-World-like batch (39-d observations,
4-d actions, rewards; every timestep is 2 tokens). Throughput is RL timesteps per second (tokens / 2),
the median over several iterations after warm-up.

- ours: ``jat_policy.modeling.JatModel`` (its GPT-Neo backbone runs attention through
  ``scaled_dot_product_attention``), exactly what ``jat-policy train`` optimises.
- baseline: the reference's arrangement built from stock parts: ``transformers.GPTNeoModel`` with eager
  attention (its only CPU path), fed ``inputs_embeds`` from a Linear(377 -> H) continuous encoder over
  cyclically expanded (obs || reward) and actions, interleaved [o0, a0, o1, ...], and a Linear(H -> 377)
  decoder for the action and next-observation MSE losses (kappa = 0.005). The other modality modules of
  the reference are left out: a Meta-World batch never touches them and AdamW skips parameters without
  gradients, so they cost nothing in either model.

Usage::

    python benchmarks/train_throughput.py                      # jat-tiny and jat-small, ~8 min on 2 cores
    python benchmarks/train_throughput.py --configs jat-tiny --iters 3

Writes benchmarks/results/train_throughput.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from machine_info import cpu_info  # benchmarks/ is on sys.path when a script here runs
from torch import nn

from jat_policy.configuration import JatConfig
from jat_policy.modeling import JatModel, cyclic_expand_dim
from jat_policy.trainers.bc import cpu_supports_bf16

RESULTS = Path(__file__).parent / "results"
OBS, ACT = 39, 4  # Meta-World
SETTINGS = {  # preset -> (batch, timesteps, warm-up iterations, timed iterations)
    "jat-tiny": (4, 256, 1, 5),
    "jat-small": (1, 256, 1, 2),
}
# Without native bf16 (AVX-512 BF16 / AMX) autocast emulates it: a jat-small iteration takes ~2 min on the
# 2-core AVX2 reference machine, so that case gets one timed iteration and no warm-up (the first iteration
# measured the same as the second there).
EMULATED_BF16_SMALL = (0, 1)


# ----------------------------------------------------------------------------------------------------- baseline
class ReferenceArrangement(nn.Module):
    """Stock GPT-Neo (eager attention) + the reference's continuous encoder/decoder and losses."""

    def __init__(self, config: JatConfig) -> None:
        super().__init__()
        from transformers import GPTNeoConfig, GPTNeoModel

        neo = GPTNeoConfig(
            vocab_size=config.vocab_size,
            max_position_embeddings=config.max_position_embeddings,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            attention_types=config.attention_types,
            num_heads=config.num_heads,
            intermediate_size=config.intermediate_size,
            window_size=config.window_size,
            activation_function=config.activation_function,
            resid_dropout=0.0,
            embed_dropout=0.0,
            attention_dropout=0.0,
            layer_norm_epsilon=config.layer_norm_epsilon,
            bos_token_id=None,
            eos_token_id=None,
        )
        neo._attn_implementation = "eager"
        self.size = config.max_continuous_size
        self.kappa = config.observation_loss_coef
        self.transformer = GPTNeoModel(neo)
        self.continuous_encoder = nn.Linear(self.size, config.hidden_size)
        self.continuous_decoder = nn.Linear(config.hidden_size, self.size)

    @staticmethod
    def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        per_step = F.mse_loss(pred, target, reduction="none").mean(-1)  # (B, L)
        return (per_step * mask).sum() / mask.sum()

    def forward(self, continuous_observations, continuous_actions, rewards, attention_mask):
        obs = torch.cat((continuous_observations, rewards.unsqueeze(-1)), dim=-1)  # (B, L, 40)
        obs_target = cyclic_expand_dim(obs, self.size)  # (B, L, 377)
        act_target = cyclic_expand_dim(continuous_actions, self.size)  # (B, L, 377)
        batch, length, _ = obs.shape
        embeds = torch.stack((self.continuous_encoder(obs_target), self.continuous_encoder(act_target)), dim=2)
        embeds = embeds.view(batch, 2 * length, -1)  # (B, 2L, H): [o0, a0, o1, a1, ...]
        mask = attention_mask.repeat_interleave(2, dim=1)  # (B, 2L)
        hidden = self.transformer(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        pred = self.continuous_decoder(hidden)  # (B, 2L, 377)
        action_loss = self.masked_mse(pred[:, ::2], act_target, attention_mask)
        obs_loss = self.masked_mse(pred[:, 1::2][:, :-1], obs_target[:, 1:], attention_mask[:, 1:])
        return self.kappa * obs_loss + (1 - self.kappa) * action_loss


# ----------------------------------------------------------------------------------------------------- timing
def make_batch(batch: int, steps: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "continuous_observations": torch.randn(batch, steps, OBS, generator=gen),
        "continuous_actions": torch.rand(batch, steps, ACT, generator=gen) * 2 - 1,
        "rewards": torch.randn(batch, steps, generator=gen),
        "attention_mask": torch.ones(batch, steps, dtype=torch.long),
    }


def loss_of(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    out = model(**batch)
    return out if isinstance(out, torch.Tensor) else out.loss


def time_iterations(model: nn.Module, batch: dict, warmup: int, iters: int, bf16: bool) -> list[float]:
    """Seconds per forward + backward + AdamW step."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    seconds = []
    for index in range(warmup + iters):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_of(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if index >= warmup:
            seconds.append(time.perf_counter() - start)
    return seconds


def build(kind: str, preset: str) -> nn.Module:
    torch.manual_seed(0)
    config = JatConfig.from_preset(preset)
    return JatModel(config) if kind == "ours" else ReferenceArrangement(config)


def check_equivalence(preset: str) -> dict:
    """Loads our weights into the baseline and compares the two losses (fp32, with padding): same function."""
    batch = make_batch(2, 16)
    batch["attention_mask"][1, 10:] = 0
    ours, baseline = build("ours", preset), build("baseline", preset)
    shared = {k: v for k, v in ours.state_dict().items() if k in baseline.state_dict()}
    baseline.load_state_dict(shared, strict=True)
    with torch.no_grad():
        a, b = loss_of(ours, batch).item(), loss_of(baseline, batch).item()
    if abs(a - b) > 1e-4 * max(1.0, abs(a)):
        raise AssertionError(f"{preset}: the baseline computes another loss ({b}) than JatModel ({a}).")
    return {"config": preset, "ours_loss": a, "baseline_loss": b}


def machine() -> dict:
    import transformers

    cpu, flags = cpu_info()
    return {
        "cpu": cpu or "unknown",
        "cpu_flags": sorted(f for f in flags if f.startswith(("avx", "amx"))),
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "native_bf16": cpu_supports_bf16(),
    }


# ----------------------------------------------------------------------------------------------------- main
def run(configs: list[str], iters: int | None) -> dict:
    results = []
    for preset in configs:
        batch_size, steps, warmup, default_iters = SETTINGS[preset]
        batch = make_batch(batch_size, steps)
        for kind in ("ours", "baseline"):
            model = build(kind, preset)
            params = sum(p.numel() for p in model.parameters())
            for bf16 in (False, True):
                plan = (warmup, iters or default_iters)
                if bf16 and preset == "jat-small" and not cpu_supports_bf16():
                    plan = EMULATED_BF16_SMALL
                seconds = time_iterations(model, batch, *plan, bf16)
                median = statistics.median(seconds)
                row = {
                    "config": preset,
                    "model": kind,
                    "dtype": "bf16-autocast" if bf16 else "fp32",
                    "batch": batch_size,
                    "timesteps": steps,
                    "parameters": params,
                    "warmup_iterations": plan[0],
                    "seconds_per_iteration": seconds,
                    "median_seconds": median,
                    "timesteps_per_second": batch_size * steps / median,
                }
                results.append(row)
                print(f"{preset:10s} {kind:8s} {row['dtype']:13s} {row['timesteps_per_second']:9.1f} timesteps/s "
                      f"(median {median:.3f} s over {len(seconds)})", flush=True)  # fmt: skip
            del model
    return {"results": results, "ratios": ratios(results)}


def ratios(results: list[dict]) -> list[dict]:
    """ours / baseline throughput per (config, dtype), and bf16 / fp32 per (config, model)."""
    speed = {(r["config"], r["model"], r["dtype"]): r["timesteps_per_second"] for r in results}
    out = []
    for config, model, dtype in speed:
        if model == "ours":
            out.append({"config": config, "dtype": dtype, "ours_over_baseline": speed[config, "ours", dtype]
                        / speed[config, "baseline", dtype]})  # fmt: skip
        if dtype == "bf16-autocast":
            out.append({"config": config, "model": model, "bf16_over_fp32": speed[config, model, dtype]
                        / speed[config, model, "fp32"]})  # fmt: skip
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    order = {"fp32": 0, "bf16-autocast": 1}
    groups = sorted({(r["config"], r["dtype"]) for r in rows}, key=lambda g: (list(SETTINGS).index(g[0]), order[g[1]]))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.38
    for offset, kind in ((-width / 2, "ours"), (width / 2, "baseline")):
        values = [next(r["timesteps_per_second"] for r in rows if (r["config"], r["dtype"], r["model"]) == (*g, kind))
                  for g in groups]  # fmt: skip
        bars = ax.bar([i + offset for i in range(len(groups))], values, width, label=kind)
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(range(len(groups)), [f"{c}\n{d}" for c, d in groups])
    ax.set_yscale("log")
    ax.set_ylabel("RL timesteps / s (forward + backward + AdamW)")
    m = report["machine"]
    bf16 = "native bf16" if m["native_bf16"] else "bf16 emulated (no AVX-512 BF16/AMX)"
    ax.set_title(
        f"Training throughput, Meta-World-like batch: {m['cpu']}, {m['torch_threads']} threads, {bf16}", fontsize=9
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="jat-tiny,jat-small", help="Comma-separated presets.")
    parser.add_argument("--iters", type=int, default=None, help="Timed iterations (default: per preset).")
    parser.add_argument("--out", default=str(RESULTS), help="Results folder.")
    args = parser.parse_args()
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    started = time.time()
    load_before = os.getloadavg()
    report = {"benchmark": "train_throughput", "machine": machine(), "load_average_before": load_before}
    report["settings"] = {c: dict(zip(("batch", "timesteps", "warmup", "iters"), SETTINGS[c], strict=True))
                          for c in configs}  # fmt: skip
    report["definition"] = "RL timesteps/s = batch x timesteps / median seconds per (forward + backward + AdamW)"
    report["note"] = (
        "one process, default torch threads; on a shared machine other jobs add noise (see load_average_*)"
    )
    report["equivalence_check"] = [check_equivalence(c) for c in configs]
    report.update(run(configs, args.iters))
    report["load_average_after"] = os.getloadavg()
    report["wall_seconds"] = round(time.time() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out / "train_throughput.png")
    for ratio in report["ratios"]:
        print(ratio)
    print(f"wrote {out / 'train_throughput.json'} and .png in {report['wall_seconds']} s")


if __name__ == "__main__":
    main()

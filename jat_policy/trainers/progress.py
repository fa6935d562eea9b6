"""What training prints: where its TensorBoard logs are, and its progress as plain lines when not on a terminal.

On a terminal transformers' own ``ProgressCallback`` draws a tqdm bar. Off one (a log file, CI, ``nohup``)
Trainer's ``PrinterCallback`` would print every log dict, numbers as quoted strings and no ETA; there
:class:`PlainProgressCallback` replaces it with a line every ``interval`` seconds::

    step 120/1500 (8%) | loss 0.4321 | lr 9.50e-04 | 3.21 steps/s | elapsed 0:37 | ETA 7:10
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from transformers import TrainerCallback

from jat_policy.utils.progress import DEFAULT_INTERVAL_S, format_duration, rate_and_eta

__all__ = ["PlainProgressCallback", "TensorBoardNotice", "tensorboard_dir"]


def tensorboard_dir(output_dir: str) -> str:
    """Where transformers' TensorBoard callback writes: ``TENSORBOARD_LOGGING_DIR`` or ``<output_dir>/runs``."""
    return os.path.expanduser(os.environ.get("TENSORBOARD_LOGGING_DIR") or os.path.join(output_dir, "runs"))


class TensorBoardNotice(TrainerCallback):
    """Prints, when training starts, where the TensorBoard logs go and the command that opens them."""

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Prints the notice once, from the main process, when TensorBoard reporting is on."""
        if state.is_world_process_zero and "tensorboard" in (args.report_to or []):
            logdir = tensorboard_dir(args.output_dir)
            print(f"TensorBoard logs: {logdir}  (open with: tensorboard --logdir {logdir})", flush=True)


class PlainProgressCallback(TrainerCallback):
    """Training progress as a plain line every ``interval`` seconds (and at the first and last step).

    Args:
        interval: Seconds between lines.
        file: Stream (default stdout, where Trainer's ``PrinterCallback`` printed).
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL_S, file: Any = None) -> None:
        self.interval = interval
        self.file = file
        self._start = self._last = 0.0
        self._start_step = 0
        self._printed_step = -1
        self._logs: dict[str, Any] = {}
        self._logged_step = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Starts the clock at the (possibly resumed) current step."""
        self._start = time.perf_counter()
        self._last = -float("inf")  # the first log prints
        self._start_step = state.global_step

    def line(self, state: Any) -> str:
        """The current progress as one line."""
        elapsed = time.perf_counter() - self._start
        done = state.global_step - self._start_step
        rate, eta = rate_and_eta(done, state.max_steps - self._start_step, elapsed)
        parts = [f"step {state.global_step}/{state.max_steps} ({state.global_step / max(state.max_steps, 1):.0%})"]
        at = "" if self._logged_step == state.global_step else f" (step {self._logged_step})"  # an older log's
        if "loss" in self._logs:
            parts.append(f"loss {self._logs['loss']:.4f}{at}")
        if "learning_rate" in self._logs:
            parts.append(f"lr {self._logs['learning_rate']:.2e}{at}")
        if "train_loss" in self._logs:  # Trainer's summary at the end
            parts.append(f"mean loss {self._logs['train_loss']:.4f}")
        parts += [f"{rate:.3g} steps/s", f"elapsed {format_duration(elapsed)}"]
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        return " | ".join(parts)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Keeps the latest numbers and prints a line when ``interval`` seconds passed or training is done."""
        numbers = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float)}
        if "loss" in numbers:
            self._logged_step = state.global_step
        self._logs.update(numbers)
        last_step = state.global_step >= state.max_steps and self._printed_step != state.global_step
        if state.is_world_process_zero and (last_step or time.perf_counter() - self._last >= self.interval):
            print(self.line(state), file=self.file or sys.stdout, flush=True)
            self._last, self._printed_step = time.perf_counter(), state.global_step

"""Scripted Atari experts that read the emulator's RAM and move the paddle to meet the ball.

No Atari demonstrations or trained agents can be fetched here, so these experts play from the game state:
ball and paddle positions read with ``env.unwrapped.ale.getRAM()`` at the addresses the AtariARI benchmark
publishes (Anand et al. 2019, ``atariari/benchmark/ram_annotations.py``). The screen positions below were
checked against rendered frames (``tests/test_data_atari_experts.py`` keeps that check); they are the
centre pixel of each object as a function of its RAM byte.

Like every expert (see :mod:`jat_policy.data.experts`) they get the env through ``reset(env, seed)``, which the
collector calls after each ``env.reset``; the env may be wrapped (the JAT Atari stack) since only
``env.unwrapped.ale`` is read. Actions are looked up by meaning, so the minimal and the full action set both work.

Example:
    >>> from jat_policy.data import collect, make_expert
    >>> result = collect("atari-breakout", make_expert("ram", "atari-breakout"), n_episodes=2)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

# AtariARI RAM addresses (facts, verified against the screen by the tests).
PONG_RAM = {"player_y": 51, "enemy_y": 50, "ball_x": 49, "ball_y": 54}
BREAKOUT_RAM = {"player_x": 72, "ball_x": 99, "ball_y": 101}

# Screen pixel of each object's centre = RAM value + offset (measured on rendered 210x160 frames).
PONG_SCREEN_OFFSETS = {"player_y": -6.0, "ball_x": -48.5, "ball_y": -12.4}
BREAKOUT_SCREEN_OFFSETS = {"player_x": -39.0, "ball_x": -48.5, "ball_y": 10.9}  # paddle: 16 px wide, left = ram - 47


def _reflect(value: float, low: float, high: float) -> float:
    """Where a ball moving freely to ``value`` ends up between walls at ``low`` and ``high`` (bounces folded)."""
    span = high - low
    folded = (value - low) % (2 * span)
    return low + span - abs(span - folded)


class AtariRamExpert:
    """Base class: binds to the env's emulator in ``reset`` and maps RAM to an action in :meth:`act`.

    Args:
        game: The ALE game name the subclass plays (checked against the env in ``reset``).
    """

    game = ""
    needed_actions: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._ale: Any = None
        self._actions: dict[str, int] = {}

    @property
    def name(self) -> str:
        """The label stored in the dataset's metadata."""
        return f"ram-scripted:{self.game.lower()}"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ale": None}  # the emulator stays in its process; reset binds a new one

    def reset(self, env: Any, seed: int | None) -> None:
        """Binds to ``env.unwrapped.ale`` (the env may be wrapped) and forgets the previous episode."""
        unwrapped = env.unwrapped
        ale = getattr(unwrapped, "ale", None)
        if ale is None:
            raise ValueError(f"{type(self).__name__} plays ALE games; got {type(unwrapped).__name__} (no .ale).")
        game = getattr(unwrapped, "_game", None) or (unwrapped.spec.id if unwrapped.spec else "")
        if self.game.lower() not in str(game).replace("_", "").lower():
            raise ValueError(f"{type(self).__name__} plays {self.game}, not {game!r}: use the expert of that game.")
        meanings = list(unwrapped.get_action_meanings())
        missing = [meaning for meaning in self.needed_actions if meaning not in meanings]
        if missing:
            raise ValueError(f"{self.game}'s action set {meanings} lacks {missing}.")
        self._ale, self._actions = ale, {meaning: meanings.index(meaning) for meaning in self.needed_actions}
        self._env = unwrapped
        self._previous: tuple[int, int] | None = None

    def __call__(self, obs: dict[str, Any]) -> int:
        """The action for the current emulator state (``obs`` is not read: the RAM holds the positions)."""
        if self._ale is None:
            raise RuntimeError(f"{type(self).__name__} needs reset(env, seed) after each env reset (collect does it).")
        return self._actions[self.act(self._ale.getRAM())]

    def act(self, ram: np.ndarray) -> str:
        """The action's meaning (``"NOOP"``, ``"FIRE"``, ...) for the 128-byte RAM."""
        raise NotImplementedError

    def _velocity(self, x: int, y: int) -> tuple[int, int] | None:
        """Ball displacement since the last call (one agent step), ``None`` on the first sighting."""
        previous, self._previous = self._previous, (x, y)
        return None if previous is None else (x - previous[0], y - previous[1])


class BreakoutRamExpert(AtariRamExpert):
    """Breakout: FIRE when no ball is in play, else move the paddle under where the falling ball will land.

    The landing column is extrapolated from the last two ball positions, folding bounces off the side walls.

    Args:
        dead_zone: RAM units (~0.6 px each) within which the paddle stays still, so it does not jitter.

    Example:
        >>> from jat_policy.wrappers import make_env
        >>> env = make_env("atari-breakout")  # doctest: +SKIP
        >>> expert = BreakoutRamExpert()
        >>> obs, info = env.reset(seed=0)  # doctest: +SKIP
        >>> expert.reset(env, 0)  # doctest: +SKIP
        >>> expert(obs) in range(env.action_space.n)  # doctest: +SKIP
        True
    """

    game = "Breakout"
    needed_actions = ("NOOP", "FIRE", "RIGHT", "LEFT")
    # In RAM units: the paddle's top row (px 189) as a ball_y value, the inner faces of the side walls (px 8, 151).
    PADDLE_ROW = 189 - BREAKOUT_SCREEN_OFFSETS["ball_y"]
    WALLS = (8 - BREAKOUT_SCREEN_OFFSETS["ball_x"], 151 - BREAKOUT_SCREEN_OFFSETS["ball_x"])
    ALIGN = BREAKOUT_SCREEN_OFFSETS["ball_x"] - BREAKOUT_SCREEN_OFFSETS["player_x"]  # paddle RAM = ball RAM + this

    def __init__(self, dead_zone: float = 4.0) -> None:
        super().__init__()
        if dead_zone < 0:
            raise ValueError(f"dead_zone={dead_zone}: expected >= 0 RAM units.")
        self.dead_zone = dead_zone

    def act(self, ram: np.ndarray) -> str:
        """FIRE, or the move that brings the paddle under the ball's landing point."""
        ball_x, ball_y, paddle = (int(ram[BREAKOUT_RAM[key]]) for key in ("ball_x", "ball_y", "player_x"))
        if ball_y == 0:  # no ball in play: launch one
            self._previous = None
            return "FIRE"
        target = float(ball_x)
        velocity = self._velocity(ball_x, ball_y)
        if velocity is not None and velocity[1] > 0:  # falling: aim at where it reaches the paddle's row
            target = _reflect(ball_x + velocity[0] * (self.PADDLE_ROW - ball_y) / velocity[1], *self.WALLS)
        error = target + self.ALIGN - paddle
        if abs(error) <= self.dead_zone:
            return "NOOP"
        return "RIGHT" if error > 0 else "LEFT"


class PongRamExpert(AtariRamExpert):
    """Pong: move the right paddle to where the approaching ball will cross its column, hitting it off-centre.

    The paddle answers the joystick with lag and momentum that the RAM does not show, so the expert tries each
    move on a copy of the emulator state (``cloneState``/``restoreState``: the episode itself is untouched) and
    keeps the one whose paddle settles nearest the target. Hitting the ball ``aim`` pixels off the paddle's
    centre returns it at a steep angle the computer player often misses.

    Args:
        aim: Pixels between the paddle's centre and the ball at contact (sign: below the centre).
        settle_steps: Agent steps of no-op after the tried move before reading where the paddle settles.
    """

    game = "Pong"
    needed_actions = ("NOOP", "RIGHT", "LEFT")  # RIGHT moves the paddle up, LEFT down
    PADDLE_COLUMN = 188  # ball_x RAM value at which the ball meets the right paddle
    WALLS = (44.5, 205.5)  # ball_y RAM values where the ball bounces off the top and bottom walls
    ALIGN = PONG_SCREEN_OFFSETS["ball_y"] - PONG_SCREEN_OFFSETS["player_y"]  # paddle RAM = ball RAM + this

    def __init__(self, aim: float = 0.0, settle_steps: int = 3) -> None:
        super().__init__()
        if settle_steps < 0:
            raise ValueError(f"settle_steps={settle_steps}: expected >= 0 agent steps.")
        self.aim, self.settle_steps = aim, settle_steps

    def _target(self, ram: np.ndarray) -> float:
        ball_x, ball_y = int(ram[PONG_RAM["ball_x"]]), int(ram[PONG_RAM["ball_y"]])
        if ball_y == 0:  # between points: wait in the middle
            self._previous = None
            return 125.0
        velocity = self._velocity(ball_x, ball_y)
        if velocity is None or velocity[0] <= 0:
            return float(ball_y)
        steps = (self.PADDLE_COLUMN - ball_x) / velocity[0]
        return _reflect(ball_y + velocity[1] * steps, *self.WALLS)

    def _settled(self, move: str) -> int:
        """Where the paddle settles after ``move`` for one agent step (4 frames) and then no-ops."""
        action_set = self._env._action_set  # ALE action enums, indexed like the env's actions
        state = self._ale.cloneState()
        for frame in range(4 * (1 + self.settle_steps)):
            self._ale.act(action_set[self._actions[move] if frame < 4 else self._actions["NOOP"]])
        paddle = int(self._ale.getRAM()[PONG_RAM["player_y"]])
        self._ale.restoreState(state)
        return paddle

    def act(self, ram: np.ndarray) -> str:
        """The move whose paddle settles nearest the ball's crossing point."""
        target = self._target(ram) + self.ALIGN + self.aim
        return min(("NOOP", "RIGHT", "LEFT"), key=lambda move: abs(self._settled(move) - target))


RAM_EXPERTS: dict[str, type[AtariRamExpert]] = {"atari-pong": PongRamExpert, "atari-breakout": BreakoutRamExpert}


def make_ram_expert(task: str, **kwargs: Any) -> AtariRamExpert:
    """The RAM expert of an Atari task (``"atari-pong"``, ``"atari-breakout"``).

    Raises:
        ValueError: No RAM expert plays ``task``.
    """
    if task not in RAM_EXPERTS:
        raise ValueError(f"No RAM expert plays {task!r}; RAM experts exist for {sorted(RAM_EXPERTS)}.")
    return RAM_EXPERTS[task](**kwargs)

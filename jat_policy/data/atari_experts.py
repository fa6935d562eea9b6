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
    """Pong: meet the approaching ball with an edge of the right paddle, so it leaves at a steep angle.

    The paddle answers the joystick with lag and momentum that the RAM does not show, so the expert tries each
    move on a copy of the emulator state (``cloneState``/``restoreState``; the episode itself is untouched):
    while the ball is far, it keeps the move whose paddle settles nearest the ball's crossing point; in the last
    ``near`` steps before contact, the move after which (then no-ops) the ball meets the paddle at the wanted
    offset. An edge hit sends the ball off at twice the vertical speed of a centre hit, which the computer player
    often cannot reach; the expert picks the edge that sends it away from the computer's paddle. A centre-hit
    tracker never loses a point but rallies for the whole 27,000-step game limit.

    Args:
        edges: ``ball_y - paddle_y`` RAM offsets at contact for a hit with the paddle's top and bottom edge (the
            paddle returns the ball for offsets of about -1 to 14; values nearer the ends lose more points).
        near: Agent steps before contact from which contact is planned exactly.
        settle_steps: Agent steps of no-op after the tried move before reading where the paddle settles.
    """

    game = "Pong"
    needed_actions = ("NOOP", "RIGHT", "LEFT")  # RIGHT moves the paddle up, LEFT down
    MOVES = ("NOOP", "RIGHT", "LEFT")
    PADDLE_COLUMN = 188  # ball_x RAM value at which the ball meets the right paddle
    WALLS = (44.5, 205.5)  # ball_y RAM values where the ball bounces off the top and bottom walls
    ALIGN = PONG_SCREEN_OFFSETS["ball_y"] - PONG_SCREEN_OFFSETS["player_y"]  # paddle RAM = ball RAM + this

    def __init__(self, edges: tuple[float, float] = (2.0, 11.0), near: int = 6, settle_steps: int = 3) -> None:
        super().__init__()
        if settle_steps < 0 or near < 1:
            raise ValueError(f"settle_steps={settle_steps}, near={near}: expected >= 0 and >= 1 agent steps.")
        self.edges, self.near, self.settle_steps = (float(edges[0]), float(edges[1])), near, settle_steps

    def _crossing(self, ball_x: int, ball_y: int, velocity: tuple[int, int] | None) -> float:
        """The ball's y when it reaches the paddle's column (its current y when it is not coming)."""
        if velocity is None or velocity[0] <= 0:
            return float(ball_y)
        steps = (self.PADDLE_COLUMN - ball_x) / velocity[0]
        return _reflect(ball_y + velocity[1] * steps, *self.WALLS)

    def _simulate(self, move: str, frames: int, until_contact: bool) -> int | None:
        """Plays ``move`` for one agent step (4 frames) then no-ops on a copy of the emulator state.

        Returns the paddle's y after ``frames`` frames, or with ``until_contact`` the ``ball_y - paddle_y`` offset
        when the ball reaches the paddle's column (``None`` if the point ends first).
        """
        action_set = self._env._action_set  # ALE action enums, indexed like the env's actions
        state, result = self._ale.cloneState(), None
        for frame in range(frames):
            self._ale.act(action_set[self._actions[move] if frame < 4 else self._actions["NOOP"]])
            ram = self._ale.getRAM()
            if not until_contact:
                result = int(ram[PONG_RAM["player_y"]])
            elif ram[PONG_RAM["ball_y"]] == 0:
                break
            elif ram[PONG_RAM["ball_x"]] >= self.PADDLE_COLUMN:
                result = int(ram[PONG_RAM["ball_y"]]) - int(ram[PONG_RAM["player_y"]])
                break
        self._ale.restoreState(state)
        return result

    def act(self, ram: np.ndarray) -> str:
        """The move that brings the paddle to the ball: exactly planned near contact, by settling point before."""
        ball_x, ball_y = int(ram[PONG_RAM["ball_x"]]), int(ram[PONG_RAM["ball_y"]])
        if ball_y == 0:  # between points: wait in the middle
            self._previous = None
            target = 125.0 + self.ALIGN
        else:
            velocity = self._velocity(ball_x, ball_y)
            if velocity is not None and velocity[0] > 0 and self.PADDLE_COLUMN - ball_x <= self.near * velocity[0]:
                top, bottom = self.edges
                wanted = bottom if ram[PONG_RAM["enemy_y"]] < 125 else top  # steep, away from the opponent
                frames = 4 * (self.near + 2)

                def miss(move: str) -> float:
                    offset = self._simulate(move, frames, until_contact=True)
                    return float("inf") if offset is None else abs(offset - wanted)

                return min(self.MOVES, key=miss)
            target = self._crossing(ball_x, ball_y, velocity) + self.ALIGN
        frames = 4 * (1 + self.settle_steps)
        return min(self.MOVES, key=lambda move: abs(self._simulate(move, frames, until_contact=False) - target))


RAM_EXPERTS: dict[str, type[AtariRamExpert]] = {"atari-pong": PongRamExpert, "atari-breakout": BreakoutRamExpert}


def make_ram_expert(task: str, **kwargs: Any) -> AtariRamExpert:
    """The RAM expert of an Atari task (``"atari-pong"``, ``"atari-breakout"``).

    Raises:
        ValueError: No RAM expert plays ``task``.
    """
    if task not in RAM_EXPERTS:
        raise ValueError(f"No RAM expert plays {task!r}; RAM experts exist for {sorted(RAM_EXPERTS)}.")
    return RAM_EXPERTS[task](**kwargs)

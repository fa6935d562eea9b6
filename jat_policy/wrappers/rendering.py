"""Off-screen rendering: ``rgb_array`` frames on a machine without a display.

Without a display, MuJoCo's default (GLFW) cannot create a context and the first ``render()`` fails with
"an OpenGL platform library has not been loaded". Headless machines render through EGL (Mesa's software
``libEGL_mesa`` or a GPU driver's) or OSMesa; ``scripts/setup.sh`` installs Mesa's EGL where apt is there.
Gymnasium's classic-control envs (CartPole...) draw with pygame, whose SDL needs its ``dummy`` video driver there.
"""

from __future__ import annotations

import ctypes.util
import os
import sys

__all__ = ["OFFSCREEN_BACKENDS", "ensure_offscreen_rendering"]

# (MUJOCO_GL value, shared library it loads), in order of preference: EGL is far faster than OSMesa
OFFSCREEN_BACKENDS = (("egl", "EGL"), ("osmesa", "OSMesa"))
_ARRAY_MODES = ("rgb_array", "depth_array")


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def ensure_offscreen_rendering(render_mode: str | None = "rgb_array") -> str | None:
    """Without a display, sets ``MUJOCO_GL`` to an off-screen backend and SDL's video driver to ``dummy``.

    Gymnasium's MuJoCo renderer reads ``MUJOCO_GL`` when it creates its first context (and pygame reads
    ``SDL_VIDEODRIVER`` when it starts), so calling this before an env renders is enough, even after
    ``import mujoco``. Values you set yourself are never changed.

    Args:
        render_mode: The env's render mode; only ``"rgb_array"`` and ``"depth_array"`` render off screen.

    Returns:
        The backend in force (``"egl"``, ``"osmesa"``, yours), or None when MuJoCo picks its own (a display,
        or no off-screen library found).
    """
    chosen = os.environ.get("MUJOCO_GL")
    if render_mode not in _ARRAY_MODES or not sys.platform.startswith("linux") or _has_display():
        return chosen or None
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    if chosen:
        return chosen
    for backend, library in OFFSCREEN_BACKENDS:
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = backend
            # PyOpenGL must load the same platform as MuJoCo's context (mujoco.egl sets it too, when unset)
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
    return None

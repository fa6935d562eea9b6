"""Off-screen rendering: which OpenGL backend MuJoCo (and so Meta-World) renders ``rgb_array`` frames with.

Without a display, MuJoCo's default (GLFW) cannot create a context and the first ``render()`` fails with
"an OpenGL platform library has not been loaded". Headless machines render through EGL (Mesa's software
``libEGL_mesa`` or a GPU driver's) or OSMesa; ``scripts/setup.sh`` installs Mesa's EGL where apt is there.
"""

from __future__ import annotations

import ctypes.util
import os
import sys

__all__ = ["OFFSCREEN_BACKENDS", "ensure_offscreen_gl"]

# (MUJOCO_GL value, shared library it loads), in order of preference: EGL is far faster than OSMesa
OFFSCREEN_BACKENDS = (("egl", "EGL"), ("osmesa", "OSMesa"))
_ARRAY_MODES = ("rgb_array", "depth_array")


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def ensure_offscreen_gl(render_mode: str | None = "rgb_array") -> str | None:
    """Sets ``MUJOCO_GL`` to an off-screen backend for array rendering when it is unset and there is no display.

    Gymnasium's MuJoCo renderer reads ``MUJOCO_GL`` when it creates its first context, so calling this before
    an env renders is enough, even after ``import mujoco``. A ``MUJOCO_GL`` you set yourself is never changed.

    Args:
        render_mode: The env's render mode; only ``"rgb_array"`` and ``"depth_array"`` render off screen.

    Returns:
        The backend in force (``"egl"``, ``"osmesa"``, yours), or None when MuJoCo picks its own (a display,
        or no off-screen library found).
    """
    chosen = os.environ.get("MUJOCO_GL")
    if render_mode not in _ARRAY_MODES or chosen or not sys.platform.startswith("linux") or _has_display():
        return chosen or None
    for backend, library in OFFSCREEN_BACKENDS:
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = backend
            # PyOpenGL must load the same platform as MuJoCo's context (mujoco.egl sets it too, when unset)
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
    return None

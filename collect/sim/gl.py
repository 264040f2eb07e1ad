"""Choose MuJoCo's OpenGL backend before `import mujoco`.

MuJoCo reads `MUJOCO_GL` once, at import. On a headless Linux box EGL (Mesa) is the fast
choice and OSMesa the fallback; a desktop may use glfw. A broken GL stack can abort the
process during context creation, so each candidate is tried in a child process first.

    from collect.sim.gl import ensure_gl_backend
    ensure_gl_backend()          # sets MUJOCO_GL (or respects yours), raises GLUnavailableError
    import mujoco
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

ENV_VAR = "MUJOCO_GL"
# Tried in this order when MUJOCO_GL is not set.
CANDIDATES: tuple[str, ...] = ("egl", "osmesa")
# Values MuJoCo itself accepts for MUJOCO_GL.
KNOWN_BACKENDS: frozenset[str] = frozenset(
    {"egl", "osmesa", "glfw", "cgl", "wgl", "disable", "disabled", "off", "false", "0"}
)
APT_HINT = (
    "install the GL libraries: `sudo apt-get install libegl1 libgl1-mesa-dri libopengl0` (EGL, preferred) "
    "or `sudo apt-get install libosmesa6` (OSMesa); or set MUJOCO_GL=glfw on a desktop with a display"
)
PROBE_TIMEOUT_S = 30.0

# A tiny scene rendered once: creating the context and drawing a frame is what fails on a bad stack.
_PROBE_CODE = """
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><light pos="0 0 1"/><geom size=".1"/></worldbody></mujoco>')
d = mujoco.MjData(m)
r = mujoco.Renderer(m, 16, 16)
r.update_scene(d)
assert r.render().shape == (16, 16, 3)
r.close()
"""


class GLUnavailableError(RuntimeError):
    """No OpenGL backend can render MuJoCo scenes here; the message says what to install."""


@dataclass(frozen=True)
class ProbeResult:
    backend: str
    ok: bool
    detail: str  # "" when ok, else the last line of the child's error


_chosen: str | None = None


def probe_backend(backend: str, timeout_s: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Render one tiny frame with `backend` in a child process (a crash there cannot take us down)."""
    env = dict(os.environ, **{ENV_VAR: backend})
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE_CODE], env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(backend, False, f"no answer within {timeout_s:.0f} s")
    if proc.returncode == 0:
        return ProbeResult(backend, True, "")
    lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
    return ProbeResult(backend, False, lines[-1] if lines else f"exit status {proc.returncode}")


def ensure_gl_backend(candidates: tuple[str, ...] = CANDIDATES) -> str:
    """Set MUJOCO_GL to a working backend and return it; call before the first `import mujoco`.

    An explicit MUJOCO_GL is respected (only checked to be a name MuJoCo knows), so a user
    can force glfw or osmesa. Otherwise the candidates are probed in order.
    """
    global _chosen
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        if explicit.lower() not in KNOWN_BACKENDS:
            raise GLUnavailableError(
                f"MUJOCO_GL={explicit!r} is not a backend MuJoCo knows (use egl, osmesa or glfw, "
                f"or unset it to choose automatically); {APT_HINT}"
            )
        return explicit
    if _chosen is not None:
        os.environ[ENV_VAR] = _chosen
        return _chosen
    if "mujoco" in sys.modules:
        # Too late to choose: MuJoCo already read the (unset) variable and uses its default.
        return "default"
    failures = []
    for backend in candidates:
        result = probe_backend(backend)
        if result.ok:
            _chosen = backend
            os.environ[ENV_VAR] = backend
            return backend
        failures.append(f"{backend}: {result.detail}")
    raise GLUnavailableError(
        "MuJoCo cannot render: no OpenGL backend works here ("
        + "; ".join(failures)
        + f"). To fix, {APT_HINT}."
    )

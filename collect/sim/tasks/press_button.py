"""Press the button.

The button is a spring-loaded cap on a slide joint. Success (strict): its travel went past
`PRESS_TRAVEL` at some tick, and later it came back above `RELEASE_TRAVEL` with nothing
touching it. A button still held down has not been "pressed and released".
"""

from __future__ import annotations

import numpy as np

from collect.sim.tasks.base import (
    FINGERTIP_BEYOND_TCP_M,
    GRIPPER_CLOSED_M,
    TABLE_Z,
    ExpertStyle,
    Move,
    SimTask,
    body_id,
    body_pos,
    finger_body_ids,
    sample_layout,
    set_fixed_pose,
    top_down_frame,
    touching,
)

TRAVEL = 0.014  # m, full stroke of the cap
PRESS_TRAVEL = 0.009  # pressed: pushed deeper than this
RELEASE_TRAVEL = 0.003  # released: back within this of the rest position
BASE_HEIGHT = 0.03
CAP_HALF_HEIGHT = 0.01


class PressButton(SimTask):
    key = "press_button"
    instruction = "press the button"
    episode_seconds = 12.0

    def __init__(self) -> None:
        self.was_pressed = False

    def worldbody_xml(self) -> str:
        # springref 0 with the joint range below it: the spring pushes the cap back up.
        # The cap touches only the arm (contype 2): it slides into its base, and the base
        # is welded to the world, so MuJoCo's parent-child contact filter does not apply.
        return f"""
    <body name="button_base" pos="0.32 -0.12 0">
      <geom name="button_base" type="box" size="0.045 0.045 {BASE_HEIGHT / 2}" pos="0 0 {BASE_HEIGHT / 2}"
            rgba="0.25 0.25 0.28 1"/>
      <body name="button" pos="0 0 {BASE_HEIGHT + CAP_HALF_HEIGHT}">
        <joint name="button" type="slide" axis="0 0 1" range="-{TRAVEL} 0" stiffness="150" springref="0"
               damping="2" armature="0.01"/>
        <geom name="button" type="cylinder" size="0.022 {CAP_HALF_HEIGHT}" rgba="0.85 0.1 0.1 1" mass="0.02"
              contype="0" conaffinity="2"/>
      </body>
    </body>"""

    def object_geom_names(self) -> list[str]:
        return ["button", "button_base"]

    def travel(self, world) -> float:
        """How far the cap is pushed in (m, >= 0)."""
        m = world.model
        jnt = m.body_jntadr[body_id(world, "button")]
        return float(-world.data.qpos[m.jnt_qposadr[jnt]])

    def place(self, world, rng: np.random.Generator) -> None:
        self.was_pressed = False
        xy = sample_layout(rng, {"button": ((0.22, 0.38), (-0.22, 0.22))}, {"button": 0.05})["button"]
        set_fixed_pose(world, "button_base", [*xy, TABLE_Z], yaw=float(rng.uniform(-np.pi, np.pi)))

    def update(self, world) -> None:
        if self.travel(world) > PRESS_TRAVEL:
            self.was_pressed = True

    def is_success(self, world) -> bool:
        released = self.travel(world) < RELEASE_TRAVEL and not touching(
            world, finger_body_ids(world), body_id(world, "button")
        )
        return self.was_pressed and released

    def keepout(self, world):
        return [(body_pos(world, "button_base")[:2], 0.08)]

    def script(self, world, style: ExpertStyle) -> list[Move]:
        # where the tool point is when the fingertips touch the cap's top
        cap = body_pos(world, "button") + [0, 0, CAP_HALF_HEIGHT + FINGERTIP_BEYOND_TCP_M]
        approach, closing = top_down_frame(cap, style, tilt_scale=0.5)
        return [
            Move("close", gripper=GRIPPER_CLOSED_M, duration=0.5),
            Move("above button", cap + [0, 0, style.hover], approach, closing, duration=1.6, settle=True),
            Move("touch", cap + [0, 0, 0.01], duration=0.8, settle=True, precise=True),
            Move("press", cap - [0, 0, TRAVEL * 0.95], duration=0.6, settle=True, precise=True),
            Move("release", cap + [0, 0, 0.04], duration=0.6),
            Move("back off", cap + [0, 0, style.hover + 0.03], duration=0.8),
        ]

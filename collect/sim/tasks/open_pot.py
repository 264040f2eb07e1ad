"""Open the pot.

A pot stands on the table with a lid (a free body with a bar-shaped knob) on it. Success
(strict): the lid rests on the table clear of the pot (its disc no longer overlaps the
pot's rim), and the gripper has let go of it. A lid held in the air, or put back, fails.
"""

from __future__ import annotations

import numpy as np

from collect.sim.tasks.base import (
    FINGERTIP_BEYOND_TCP_M,
    GRIPPER_CLOSED_M,
    GRIPPER_OPEN_M,
    REST_SPEED,
    TABLE_Z,
    ExpertStyle,
    Move,
    SimTask,
    body_pos,
    body_speed,
    body_xmat,
    down,
    held_by_gripper,
    sample_layout,
    set_fixed_pose,
    set_free_pose,
)

POT_RADIUS = 0.06
POT_HEIGHT = 0.07
LID_RADIUS = 0.066
LID_HALF_THICK = 0.004
KNOB_HALF = (0.026, 0.009, 0.012)  # long, narrow (grasped across), tall


def put_down_spot(pot: np.ndarray, spot: tuple[float, float]) -> np.ndarray:
    """Where the lid goes: beside the pot, towards the middle of the table (in reach)."""
    side = 1.0 if pot[1] < 0.0 else -1.0
    return pot + np.array([0.02 * spot[0], side * (POT_RADIUS + LID_RADIUS + 0.05 + 0.01 * spot[1]), 0])


class OpenPot(SimTask):
    key = "open_pot"
    instruction = "open the pot"
    episode_seconds = 16.0

    def worldbody_xml(self) -> str:
        kx, ky, kz = KNOB_HALF
        return f"""
    <body name="pot" pos="0.3 -0.1 0">
      <geom name="pot" type="cylinder" size="{POT_RADIUS} {POT_HEIGHT / 2}" pos="0 0 {POT_HEIGHT / 2}"
            rgba="0.55 0.55 0.6 1"/>
      <geom name="pot_handle_l" type="box" size="0.012 0.02 0.006" pos="{POT_RADIUS + 0.01} 0 {POT_HEIGHT - 0.015}"
            rgba="0.15 0.15 0.15 1"/>
      <geom name="pot_handle_r" type="box" size="0.012 0.02 0.006" pos="{-POT_RADIUS - 0.01} 0 {POT_HEIGHT - 0.015}"
            rgba="0.15 0.15 0.15 1"/>
    </body>
    <body name="lid" pos="0.3 -0.1 {POT_HEIGHT + LID_HALF_THICK}">
      <freejoint/>
      <geom name="lid" type="cylinder" size="{LID_RADIUS} {LID_HALF_THICK}" rgba="0.75 0.3 0.2 1" mass="0.06"/>
      <geom name="lid_knob" type="box" size="{kx} {ky} {kz}" pos="0 0 {LID_HALF_THICK + kz}"
            rgba="0.1 0.1 0.12 1" mass="0.01" condim="4" friction="1.5 0.02 0.002"/>
    </body>"""

    def object_geom_names(self) -> list[str]:
        return ["pot", "lid", "lid_knob"]

    def size_geom_names(self) -> list[str]:
        return ["lid_knob"]

    def place(self, world, rng: np.random.Generator) -> None:
        xy = sample_layout(rng, {"pot": ((0.25, 0.34), (-0.2, 0.12))}, {"pot": 0.1})["pot"]
        set_fixed_pose(world, "pot", [*xy, TABLE_Z])
        set_free_pose(
            world, "lid", [*xy, TABLE_Z + POT_HEIGHT + LID_HALF_THICK], yaw=float(rng.uniform(-1.2, 1.2))
        )

    def lid_clear_of_pot(self, world) -> bool:
        gap = np.linalg.norm(body_pos(world, "lid")[:2] - body_pos(world, "pot")[:2])
        return bool(gap > POT_RADIUS + LID_RADIUS)

    def is_success(self, world) -> bool:
        lid = body_pos(world, "lid")
        upright = body_xmat(world, "lid")[2, 2] > 0.7
        on_table = lid[2] < TABLE_Z + LID_HALF_THICK + 0.01
        return (
            self.lid_clear_of_pot(world)
            and on_table
            and upright
            and not held_by_gripper(world, "lid")
            and body_speed(world, "lid") < REST_SPEED
        )

    def keepout(self, world):
        pot = body_pos(world, "pot")
        # the pot with its lid, and where the expert puts the lid down (any style)
        return [(pot[:2], LID_RADIUS + 0.02), (put_down_spot(pot, (0.0, 0.0))[:2], LID_RADIUS + 0.04)]

    def script(self, world, style: ExpertStyle) -> list[Move]:
        lid = body_pos(world, "lid")
        pot = body_pos(world, "pot")
        # tool point high enough on the knob that the fingertips stay clear of the lid
        knob = lid + [0, 0, LID_HALF_THICK + FINGERTIP_BEYOND_TCP_M + 0.004]
        closing = body_xmat(world, "lid")[:, 1]  # across the knob's narrow side (lid y axis)
        approach = down(0.5 * style.approach_tilt, float(np.arctan2(knob[1], knob[0])))
        # Set the lid down beside the pot, on the side away from the base's reach limit.
        put = put_down_spot(pot, style.spot)
        put_z = TABLE_Z + 2 * LID_HALF_THICK + FINGERTIP_BEYOND_TCP_M + 0.006
        return [
            Move("open", gripper=GRIPPER_OPEN_M, duration=0.4),
            Move("above knob", knob + [0, 0, style.hover], approach, closing, duration=1.6, settle=True),
            Move("descend", knob, duration=1.0, settle=True, precise=True),
            Move("grasp", gripper=GRIPPER_CLOSED_M, duration=0.7),
            Move("lift", knob + [0, 0, style.lift], duration=1.0),
            Move("carry", [put[0], put[1], put_z + style.lift * 0.8], duration=1.4, settle=True),
            Move("set down", [put[0], put[1], put_z], duration=0.9, settle=True, precise=True),
            Move("release", gripper=GRIPPER_OPEN_M, duration=0.6),
            Move("retreat", [put[0], put[1], put_z + 0.12], duration=0.8),
        ]

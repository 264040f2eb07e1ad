"""Pick up the grape and place it in the basket.

Success (strict): the grape rests inside the basket (footprint and below the rim), the
gripper has let go of it (no finger contact, fingers open). A grape held above the basket,
or dropped beside it, is not placed.
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
    down,
    geom_half_height,
    held_by_gripper,
    sample_layout,
    set_fixed_pose,
    set_free_pose,
    top_down_frame,
)
from collect.sim.tasks.props import BASKET_INNER_HALF, basket_geom_names, basket_xml, inside_basket

GRAPE_RADIUS = 0.012


class PickGrape(SimTask):
    key = "pick_grape"
    instruction = "pick up the grape and place it in the basket"
    episode_seconds = 16.0

    def worldbody_xml(self) -> str:
        # condim 6 adds rolling friction: a grape does not roll away across the table.
        return (
            basket_xml()
            + f"""
    <body name="grape" pos="0.3 -0.1 {GRAPE_RADIUS}">
      <freejoint/>
      <geom name="grape" type="sphere" size="{GRAPE_RADIUS}" rgba="0.45 0.12 0.5 1" mass="0.008"
            condim="6" friction="1.5 0.02 0.005" solref="0.004 1"/>
    </body>"""
        )

    def object_geom_names(self) -> list[str]:
        return ["grape", *basket_geom_names()]

    def size_geom_names(self) -> list[str]:
        return ["grape"]

    def place(self, world, rng: np.random.Generator) -> None:
        layout = sample_layout(
            rng,
            {"grape": ((0.22, 0.36), (-0.2, 0.05)), "basket": ((0.24, 0.36), (0.08, 0.24))},
            {"grape": 0.03, "basket": 0.1},
        )
        set_fixed_pose(world, "basket", [*layout["basket"], TABLE_Z], yaw=float(rng.uniform(-0.4, 0.4)))
        r = geom_half_height(world, "grape")
        set_free_pose(world, "grape", [*layout["grape"], TABLE_Z + r])

    def is_success(self, world) -> bool:
        grape = body_pos(world, "grape")
        return (
            inside_basket(world, grape)
            and not held_by_gripper(world, "grape")
            and world.arm_state().gripper_m > 0.03
            and body_speed(world, "grape") < REST_SPEED
        )

    def keepout(self, world):
        return [(body_pos(world, "grape")[:2], 0.05), (body_pos(world, "basket")[:2], 0.11)]

    def script(self, world, style: ExpertStyle) -> list[Move]:
        grape = body_pos(world, "grape")
        basket = body_pos(world, "basket")
        approach, closing = top_down_frame(grape, style)
        grasp = np.array([grape[0], grape[1], max(grape[2], TABLE_Z + FINGERTIP_BEYOND_TCP_M + 0.004)])
        drop = basket + np.array([*(0.35 * BASKET_INNER_HALF * np.array(style.spot)), 0.0])
        drop_yaw = float(np.arctan2(drop[1], drop[0]))
        return [
            Move("open", gripper=GRIPPER_OPEN_M, duration=0.4),
            Move("above grape", grape + [0, 0, style.hover], approach, closing, duration=1.6, settle=True),
            Move("descend", grasp, duration=1.0, settle=True, precise=True),
            Move("grasp", gripper=GRIPPER_CLOSED_M, duration=0.7),
            Move("lift", grape + [0, 0, style.lift], duration=1.0),
            Move(
                "over basket",
                drop + [0, 0, 0.12],
                down(0.0),
                np.array([-np.sin(drop_yaw), np.cos(drop_yaw), 0.0]),
                duration=1.5,
                settle=True,
            ),
            Move("lower", drop + [0, 0, 0.05], duration=0.7, settle=True),
            Move("release", gripper=GRIPPER_OPEN_M, duration=0.6),
            Move("retreat", drop + [0, 0, 0.15], duration=0.8),
        ]

"""Pour the block into the basket.

A small block sits in an open cup. The expert grasps the cup from the side, carries it
over the basket, rolls the wrist to tip the block out, turns the cup upright and puts it
down beside the basket. Success (strict): the block rests inside the basket, and the cup
is not in (nor above) the basket.
"""

from __future__ import annotations

import numpy as np

from collect.sim.tasks.base import (
    GRIPPER_CLOSED_M,
    GRIPPER_OPEN_M,
    REST_SPEED,
    TABLE_Z,
    ExpertStyle,
    Move,
    SimTask,
    body_pos,
    body_speed,
    geom_half_height,
    horizontal,
    sample_layout,
    set_fixed_pose,
    set_free_pose,
)
from collect.sim.tasks.props import basket_geom_names, basket_xml, inside_basket, over_basket_footprint

CUP_RADIUS = 0.026  # centre line of the wall
CUP_WALL = 0.002  # half thickness
CUP_HALF_HEIGHT = 0.035
CUP_SEGMENTS = 10
BLOCK_HALF = 0.009
POUR_ROLL = np.radians(120)


def _cup_walls() -> str:
    seg_half = CUP_RADIUS * np.tan(np.pi / CUP_SEGMENTS) + CUP_WALL
    walls = []
    for i in range(CUP_SEGMENTS):
        a = 2 * np.pi * i / CUP_SEGMENTS
        x, y = CUP_RADIUS * np.cos(a), CUP_RADIUS * np.sin(a)
        walls.append(
            f'      <geom name="cup_wall{i}" type="box" size="{CUP_WALL} {seg_half:.5f} {CUP_HALF_HEIGHT}" '
            f'pos="{x:.5f} {y:.5f} {CUP_HALF_HEIGHT}" euler="0 0 {np.degrees(a):.3f}" class="cup"/>'
        )
    return "\n".join(walls)


class PourBlock(SimTask):
    key = "pour_block"
    instruction = "pour the block into the basket"
    episode_seconds = 20.0

    def worldbody_xml(self) -> str:
        return (
            basket_xml()
            + f"""
    <body name="cup" pos="0.3 -0.1 0">
      <freejoint/>
      <geom name="cup_bottom" type="cylinder" size="{CUP_RADIUS + CUP_WALL} 0.003" pos="0 0 0.003"
            rgba="0.95 0.85 0.3 1" mass="0.015"/>
{_cup_walls().replace('class="cup"', 'rgba="0.95 0.85 0.3 1" mass="0.002" condim="4" friction="1.5 0.02 0.002"')}
    </body>
    <body name="block" pos="0.3 -0.1 {0.006 + BLOCK_HALF}">
      <freejoint/>
      <geom name="block" type="box" size="{BLOCK_HALF} {BLOCK_HALF} {BLOCK_HALF}" rgba="0.15 0.55 0.2 1"
            mass="0.008" friction="0.6 0.01 0.001"/>
    </body>"""
        )

    def object_geom_names(self) -> list[str]:
        return ["block", "cup_bottom", *[f"cup_wall{i}" for i in range(CUP_SEGMENTS)], *basket_geom_names()]

    def size_geom_names(self) -> list[str]:
        return ["block"]

    def place(self, world, rng: np.random.Generator) -> None:
        layout = sample_layout(
            rng,
            {"cup": ((0.24, 0.34), (-0.2, -0.02)), "basket": ((0.26, 0.36), (0.1, 0.22))},
            {"cup": 0.06, "basket": 0.12},
        )
        set_fixed_pose(world, "basket", [*layout["basket"], TABLE_Z], yaw=float(rng.uniform(-0.4, 0.4)))
        set_free_pose(world, "cup", [*layout["cup"], TABLE_Z], yaw=float(rng.uniform(-np.pi, np.pi)))
        half = geom_half_height(world, "block")
        set_free_pose(
            world, "block", [*layout["cup"], TABLE_Z + 0.006 + half], yaw=float(rng.uniform(-0.5, 0.5))
        )

    def is_success(self, world) -> bool:
        cup_centre = body_pos(world, "cup") + [0, 0, CUP_HALF_HEIGHT]
        return (
            inside_basket(world, body_pos(world, "block"))
            and body_speed(world, "block") < REST_SPEED
            and not over_basket_footprint(world, cup_centre)
        )

    def keepout(self, world):
        return [(body_pos(world, "cup")[:2], 0.07), (body_pos(world, "basket")[:2], 0.11)]

    def script(self, world, style: ExpertStyle) -> list[Move]:
        cup = body_pos(world, "cup")
        basket = body_pos(world, "basket")
        grip_z = TABLE_Z + CUP_HALF_HEIGHT + 0.008
        yaw = float(np.arctan2(cup[1], cup[0])) + 0.5 * style.approach_yaw
        approach = horizontal(yaw)
        closing = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
        grasp = np.array([cup[0], cup[1], grip_z])
        pre = grasp - 0.07 * approach
        # Over the basket the cup's mouth tips towards -closing; hold it offset the other way.
        b_yaw = float(np.arctan2(basket[1], basket[0]))
        b_approach, b_closing = horizontal(b_yaw), np.array([-np.sin(b_yaw), np.cos(b_yaw), 0.0])
        pour_at = basket + [0, 0, 0.13] + 0.025 * b_closing - 0.02 * b_approach
        rolled = np.cos(POUR_ROLL) * b_closing + np.sin(POUR_ROLL) * np.cross(b_approach, b_closing)
        put = grasp + np.array([0.015 * style.spot[0], 0.015 * style.spot[1], 0.004])
        return [
            Move("open", gripper=GRIPPER_OPEN_M, duration=0.4),
            Move("beside cup", pre + [0, 0, 0.06], approach, closing, duration=1.5),
            Move("level", pre, duration=0.8, settle=True),
            Move("reach in", grasp, duration=1.0, settle=True, precise=True),
            Move("grasp", gripper=GRIPPER_CLOSED_M, duration=0.7),
            Move("lift", grasp + [0, 0, style.lift], duration=1.0),
            Move("over basket", pour_at, b_approach, b_closing, duration=1.6, settle=True),
            Move("pour", closing=rolled, duration=1.2, settle=True, flip_ok=False),
            Move("hold", duration=0.6),
            Move("upright", closing=b_closing, duration=1.0, flip_ok=False),
            Move("carry back", put + [0, 0, style.lift], approach, closing, duration=1.6, settle=True),
            Move("put down", put, duration=1.0, settle=True, precise=True),
            Move("release", gripper=GRIPPER_OPEN_M, duration=0.6),
            Move("withdraw", put - 0.08 * approach, duration=0.8),
            Move("rise", put - 0.08 * approach + [0, 0, 0.1], duration=0.6),
        ]

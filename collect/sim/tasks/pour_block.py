"""Pour the block into the basket.

A small block sits in an open cup. The expert grasps the cup from the side (fingers
pointing forward and down), carries it over the basket, rolls the wrist to tip the block
out, turns the cup upright and puts it back down where it stood. Success (strict): the
block rests inside the basket, and the cup is neither in nor above the basket.
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
    body_xmat,
    geom_half_height,
    pitched_frame,
    sample_layout,
    set_fixed_pose,
    set_free_pose,
)
from collect.sim.tasks.props import (
    BASKET_WALL_HEIGHT,
    basket_geom_names,
    basket_xml,
    inside_basket,
    over_basket_footprint,
)

CUP_RADIUS = 0.026  # centre line of the wall
CUP_WALL = 0.002  # half thickness
CUP_HALF_HEIGHT = 0.025
CUP_FLOOR = 0.006
CUP_SEGMENTS = 10
BLOCK_HALF = 0.009
GRASP_PITCH = np.radians(35)  # fingers below horizontal when grasping the cup on the table
POUR_PITCH = np.radians(10)  # ... and while pouring (a flatter tool tips the cup further)
POUR_ROLL = np.radians(120)  # wrist roll that tips the cup's mouth below horizontal
POUR_HEIGHT = 0.1  # tool point above the basket rim while pouring
SPILL_REACH = 0.045  # where the block leaves the cup, from the tool point along the cup axis


def _cup_walls(attrs: str) -> str:
    seg_half = CUP_RADIUS * np.tan(np.pi / CUP_SEGMENTS) + CUP_WALL
    walls = []
    for i in range(CUP_SEGMENTS):
        a = 2 * np.pi * i / CUP_SEGMENTS
        x, y = CUP_RADIUS * np.cos(a), CUP_RADIUS * np.sin(a)
        walls.append(
            f'      <geom name="cup_wall{i}" type="box" size="{CUP_WALL} {seg_half:.5f} {CUP_HALF_HEIGHT}" '
            f'pos="{x:.5f} {y:.5f} {CUP_HALF_HEIGHT}" euler="0 0 {a:.5f}" {attrs}/>'
        )
    return "\n".join(walls)


class PourBlock(SimTask):
    key = "pour_block"
    instruction = "pour the block into the basket"
    episode_seconds = 22.0

    def worldbody_xml(self) -> str:
        cup_rgba = 'rgba="0.95 0.85 0.3 1"'
        # The block's `priority` makes its low friction win against the grippy cup walls:
        # it slides out once the cup tips past ~6 degrees below horizontal.
        return (
            basket_xml()
            + f"""
    <body name="cup" pos="0.3 -0.1 0">
      <freejoint/>
      <geom name="cup_bottom" type="cylinder" size="{CUP_RADIUS + CUP_WALL} {CUP_FLOOR / 2}" pos="0 0 {CUP_FLOOR / 2}"
            {cup_rgba} mass="0.015"/>
{_cup_walls(cup_rgba + ' mass="0.002" condim="4" friction="1.5 0.02 0.002"')}
    </body>
    <body name="block" pos="0.3 -0.1 {CUP_FLOOR + BLOCK_HALF}">
      <freejoint/>
      <geom name="block" type="box" size="{BLOCK_HALF} {BLOCK_HALF} {BLOCK_HALF}" rgba="0.15 0.55 0.2 1"
            mass="0.008" friction="0.1 0.01 0.001" priority="1"/>
    </body>"""
        )

    def object_geom_names(self) -> list[str]:
        return ["block", "cup_bottom", *[f"cup_wall{i}" for i in range(CUP_SEGMENTS)], *basket_geom_names()]

    def size_geom_names(self) -> list[str]:
        return ["block"]

    def place(self, world, rng: np.random.Generator) -> None:
        layout = sample_layout(
            rng,
            {"cup": ((0.24, 0.34), (-0.2, -0.02)), "basket": ((0.24, 0.34), (0.1, 0.2))},
            {"cup": 0.06, "basket": 0.12},
        )
        set_fixed_pose(world, "basket", [*layout["basket"], TABLE_Z], yaw=float(rng.uniform(-0.4, 0.4)))
        set_free_pose(world, "cup", [*layout["cup"], TABLE_Z], yaw=float(rng.uniform(-np.pi, np.pi)))
        half = geom_half_height(world, "block")
        set_free_pose(
            world, "block", [*layout["cup"], TABLE_Z + CUP_FLOOR + half], yaw=float(rng.uniform(-0.5, 0.5))
        )

    def is_success(self, world) -> bool:
        cup_centre = body_pos(world, "cup") + body_xmat(world, "cup") @ [0, 0, CUP_HALF_HEIGHT]
        return (
            inside_basket(world, body_pos(world, "block"))
            and body_speed(world, "block") < REST_SPEED
            and not over_basket_footprint(world, cup_centre, radius=CUP_RADIUS)
        )

    def keepout(self, world):
        cup = body_pos(world, "cup")[:2]
        # the cup, and the corridor the hand comes down along from the base's side
        return [
            (cup, 0.07),
            (cup * (1 - 0.1 / np.linalg.norm(cup)), 0.06),
            (body_pos(world, "basket")[:2], 0.11),
        ]

    def script(self, world, style: ExpertStyle) -> list[Move]:
        cup = body_pos(world, "cup")
        basket = body_pos(world, "basket")
        grasp = np.array([cup[0], cup[1], TABLE_Z + CUP_HALF_HEIGHT + 0.006])
        yaw = float(np.arctan2(cup[1], cup[0])) + 0.5 * style.approach_yaw
        approach, closing = pitched_frame(yaw, GRASP_PITCH + 0.5 * style.approach_tilt)
        pre = grasp - 0.08 * approach

        # The cup's axis seen from the tool while it is held; where it points once rolled
        # tells where the block spills, so the tool is placed to spill over the basket centre.
        cup_axis_in_tool = np.column_stack([approach, closing, np.cross(approach, closing)]).T @ [0, 0, 1]
        b_yaw = float(np.arctan2(basket[1], basket[0]))
        carry = pitched_frame(b_yaw, POUR_PITCH)
        tipped = pitched_frame(b_yaw, POUR_PITCH, POUR_ROLL)
        spill_dir = np.column_stack([tipped[0], tipped[1], np.cross(*tipped)]) @ cup_axis_in_tool
        pour_at = basket + [0, 0, BASKET_WALL_HEIGHT + POUR_HEIGHT]
        pour_at[:2] -= SPILL_REACH * spill_dir[:2]
        put = grasp + np.array([0.01 * style.spot[0], 0.01 * style.spot[1], 0.004])
        return [
            Move("open", gripper=GRIPPER_OPEN_M, duration=0.4),
            Move("behind cup", pre + [0, 0, 0.06], approach, closing, duration=1.5),
            Move("line up", pre, duration=0.8, settle=True),
            Move("reach in", grasp, duration=1.0, settle=True, precise=True),
            Move("grasp", gripper=GRIPPER_CLOSED_M, duration=0.7),
            Move("lift", grasp + [0, 0, style.lift], duration=1.0),
            Move("over basket", pour_at, carry[0], carry[1], duration=1.6, settle=True),
            Move("pour", closing=tipped[1], duration=1.2, settle=True, flip_ok=False),
            Move("let it fall", duration=0.7),
            Move("upright", closing=carry[1], duration=1.0, flip_ok=False),
            Move("carry back", put + [0, 0, style.lift], approach, closing, duration=1.6, settle=True),
            Move("put down", put, duration=1.0, settle=True, precise=True),
            Move("release", gripper=GRIPPER_OPEN_M, duration=0.6),
            Move("withdraw", put - 0.08 * approach, duration=0.8),
            Move("rise", put - 0.08 * approach + [0, 0, 0.1], duration=0.6),
        ]

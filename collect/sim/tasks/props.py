"""Objects more than one task uses: the basket (pour_block, pick_grape) and the region test
that says an object lies inside it."""

from __future__ import annotations

import numpy as np

from collect.sim.tasks.base import body_pos, body_xmat

BASKET_INNER_HALF = 0.062  # m, half the inner width of the square basket
BASKET_WALL_HEIGHT = 0.05
BASKET_WALL = 0.005


def basket_xml(name: str = "basket", rgba: str = "0.25 0.45 0.8 1") -> str:
    """A square open basket: a floor and four walls, fixed to the table (moved by the task)."""
    h = BASKET_INNER_HALF + BASKET_WALL
    w, hz = BASKET_WALL, BASKET_WALL_HEIGHT / 2
    walls = [
        (f"0 {h - w} {hz}", f"{h} {w} {hz}"),
        (f"0 {-(h - w)} {hz}", f"{h} {w} {hz}"),
        (f"{h - w} 0 {hz}", f"{w} {h} {hz}"),
        (f"{-(h - w)} 0 {hz}", f"{w} {h} {hz}"),
    ]
    geoms = "\n".join(
        f'      <geom name="{name}_wall{i}" type="box" pos="{p}" size="{s}" rgba="{rgba}"/>'
        for i, (p, s) in enumerate(walls)
    )
    return f"""
    <body name="{name}" pos="0.3 0.2 0">
      <geom name="{name}_floor" type="box" pos="0 0 0.002" size="{h} {h} 0.002" rgba="{rgba}"/>
{geoms}
    </body>"""


def basket_geom_names(name: str = "basket") -> list[str]:
    return [f"{name}_floor"] + [f"{name}_wall{i}" for i in range(4)]


def inside_basket(world, obj_pos: np.ndarray, margin: float = 0.0, name: str = "basket") -> bool:
    """True when `obj_pos` lies within the basket's inner footprint and below its rim."""
    centre = body_pos(world, name)
    local = body_xmat(world, name).T @ (np.asarray(obj_pos) - centre)
    half = BASKET_INNER_HALF - margin
    return bool(abs(local[0]) < half and abs(local[1]) < half and -0.005 < local[2] < BASKET_WALL_HEIGHT)


def over_basket_footprint(world, obj_pos: np.ndarray, radius: float = 0.0, name: str = "basket") -> bool:
    """True when a disc of `radius` around `obj_pos` overlaps the basket's outer footprint
    (at any height: an object held above the basket counts)."""
    centre = body_pos(world, name)
    local = body_xmat(world, name).T @ (np.asarray(obj_pos) - centre)
    half = BASKET_INNER_HALF + BASKET_WALL + radius
    return bool(abs(local[0]) < half and abs(local[1]) < half)

"""Source tasks: what the in-house backbone is pretrained on, never what it is evaluated on.

The paper fine-tunes weights pretrained on other robots and tasks to a new arm and four
new tasks; the shift is what makes its comparison meaningful. Here the shift is:

| source task   | instruction                        | differs from the four target tasks by             |
|---------------|------------------------------------|---------------------------------------------------|
| `lift_cube`   | lift the green cube                | object (cube), goal (hold it up), no receptacle    |
| `cube_on_plate` | put the green cube on the plate  | object and receptacle (a flat plate, no walls)     |
| `touch_ball`  | touch the orange ball              | goal (contact only), object on a post              |
| `push_switch` | push the blue switch down          | a square blue switch in other places               |

and, for every source task, the side camera sits elsewhere (`SOURCE_CAMERA_SHIFT_M`,
plus a few centimetres of jitter per episode) and objects are placed in other regions.
The wrist camera rides on the arm, so it is the same arm seen the same way: the robot is
the one thing source and target share.
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
    body_id,
    body_pos,
    body_speed,
    down,
    finger_body_ids,
    held_by_gripper,
    sample_layout,
    set_fixed_pose,
    set_free_pose,
    top_down_frame,
    touching,
)
from collect.sim.tasks.press_button import PressButton

SOURCE_CAMERA_SHIFT_M = (0.06, 0.10, 0.05)  # the side camera's post, moved for the source corpus
CAMERA_JITTER_M = 0.02
CUBE_HALF = 0.0125
PLATE_RADIUS = 0.055
PLATE_HALF_HEIGHT = 0.004
BALL_RADIUS = 0.018
POST_HEIGHT = 0.05
LIFTED_M = 0.06  # the cube's bottom this far above the table counts as lifted


class SourceTask(SimTask):
    """A source task moves the side camera in `place` (a model edit, made again every episode)."""

    def place(self, world, rng: np.random.Generator) -> None:
        cam = world.model.camera("side").id
        shift = np.asarray(SOURCE_CAMERA_SHIFT_M) + rng.uniform(-CAMERA_JITTER_M, CAMERA_JITTER_M, 3)
        world.model.cam_pos[cam] = world.nominal_camera_pos("side") + shift
        self.place_objects(world, rng)

    def place_objects(self, world, rng: np.random.Generator) -> None:
        raise NotImplementedError


def _cube_xml(name: str = "cube", rgba: str = "0.2 0.7 0.25 1") -> str:
    return f"""
    <body name="{name}" pos="0.3 0 {CUBE_HALF}">
      <freejoint/>
      <geom name="{name}" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" rgba="{rgba}" mass="0.02"
            condim="4" friction="1.2 0.02 0.002"/>
    </body>"""


def _grasp_moves(obj: np.ndarray, style: ExpertStyle, lift: float) -> list[Move]:
    """Open, come down on `obj` from above, close, lift `lift` metres."""
    approach, closing = top_down_frame(obj, style)
    grasp = np.array([obj[0], obj[1], max(obj[2], TABLE_Z + FINGERTIP_BEYOND_TCP_M + 0.004)])
    return [
        Move("open", gripper=GRIPPER_OPEN_M, duration=0.4),
        Move("above", obj + [0, 0, style.hover], approach, closing, duration=1.6, settle=True),
        Move("descend", grasp, duration=1.0, settle=True, precise=True),
        Move("grasp", gripper=GRIPPER_CLOSED_M, duration=0.7),
        Move("lift", obj + [0, 0, lift], duration=1.0, settle=True),
    ]


class LiftCube(SourceTask):
    key = "lift_cube"
    instruction = "lift the green cube"
    episode_seconds = 12.0

    def worldbody_xml(self) -> str:
        return _cube_xml()

    def object_geom_names(self) -> list[str]:
        return ["cube"]

    def place_objects(self, world, rng: np.random.Generator) -> None:
        xy = sample_layout(rng, {"cube": ((0.20, 0.40), (-0.28, 0.28))}, {"cube": 0.03})["cube"]
        set_free_pose(world, "cube", [*xy, TABLE_Z + CUBE_HALF], yaw=float(rng.uniform(-np.pi, np.pi)))

    def is_success(self, world) -> bool:
        bottom = body_pos(world, "cube")[2] - CUBE_HALF
        return bottom > TABLE_Z + LIFTED_M and held_by_gripper(world, "cube")

    def keepout(self, world):
        return [(body_pos(world, "cube")[:2], 0.05)]

    def script(self, world, style: ExpertStyle) -> list[Move]:
        return _grasp_moves(body_pos(world, "cube"), style, lift=max(style.lift, LIFTED_M + 0.04))


class CubeOnPlate(SourceTask):
    key = "cube_on_plate"
    instruction = "put the green cube on the plate"
    episode_seconds = 16.0

    def worldbody_xml(self) -> str:
        return (
            _cube_xml()
            + f"""
    <body name="plate" pos="0.3 0.15 0">
      <geom name="plate" type="cylinder" size="{PLATE_RADIUS} {PLATE_HALF_HEIGHT}" pos="0 0 {PLATE_HALF_HEIGHT}"
            rgba="0.9 0.8 0.2 1"/>
    </body>"""
        )

    def object_geom_names(self) -> list[str]:
        return ["cube", "plate"]

    def place_objects(self, world, rng: np.random.Generator) -> None:
        layout = sample_layout(
            rng,
            {"cube": ((0.20, 0.38), (0.0, 0.26)), "plate": ((0.22, 0.38), (-0.26, -0.04))},
            {"cube": 0.03, "plate": 0.08},
        )
        set_fixed_pose(world, "plate", [*layout["plate"], TABLE_Z])
        set_free_pose(
            world, "cube", [*layout["cube"], TABLE_Z + CUBE_HALF], yaw=float(rng.uniform(-np.pi, np.pi))
        )

    def is_success(self, world) -> bool:
        cube, plate = body_pos(world, "cube"), body_pos(world, "plate")
        on_top = abs(cube[2] - (plate[2] + 2 * PLATE_HALF_HEIGHT + CUBE_HALF)) < 0.006
        return (
            on_top
            and np.linalg.norm(cube[:2] - plate[:2]) < PLATE_RADIUS
            and not held_by_gripper(world, "cube")
            and body_speed(world, "cube") < REST_SPEED
        )

    def keepout(self, world):
        return [(body_pos(world, "cube")[:2], 0.05), (body_pos(world, "plate")[:2], 0.09)]

    def script(self, world, style: ExpertStyle) -> list[Move]:
        cube, plate = body_pos(world, "cube"), body_pos(world, "plate")
        spot = plate + np.array([*(0.3 * PLATE_RADIUS * np.asarray(style.spot)), 2 * PLATE_HALF_HEIGHT])
        yaw = float(np.arctan2(spot[1], spot[0]))
        closing = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
        return [
            *_grasp_moves(cube, style, lift=style.lift),
            Move("over plate", spot + [0, 0, 0.10], down(0.0), closing, duration=1.5, settle=True),
            Move(
                "lower", spot + [0, 0, CUBE_HALF + FINGERTIP_BEYOND_TCP_M + 0.01], duration=0.8, settle=True
            ),
            Move("release", gripper=GRIPPER_OPEN_M, duration=0.6),
            Move("retreat", spot + [0, 0, 0.14], duration=0.8),
        ]


class TouchBall(SourceTask):
    key = "touch_ball"
    instruction = "touch the orange ball"
    episode_seconds = 10.0

    def worldbody_xml(self) -> str:
        return f"""
    <body name="post" pos="0.3 0 0">
      <geom name="post" type="cylinder" size="0.012 {POST_HEIGHT / 2}" pos="0 0 {POST_HEIGHT / 2}"
            rgba="0.3 0.3 0.32 1"/>
      <body name="ball" pos="0 0 {POST_HEIGHT + BALL_RADIUS}">
        <geom name="ball" type="sphere" size="{BALL_RADIUS}" rgba="1 0.5 0.1 1"/>
      </body>
    </body>"""

    def object_geom_names(self) -> list[str]:
        return ["ball", "post"]

    def __init__(self) -> None:
        self.touched = False

    def place_objects(self, world, rng: np.random.Generator) -> None:
        self.touched = False
        xy = sample_layout(rng, {"post": ((0.22, 0.36), (-0.26, 0.26))}, {"post": 0.04})["post"]
        set_fixed_pose(world, "post", [*xy, TABLE_Z])

    def update(self, world) -> None:
        if touching(world, finger_body_ids(world), body_id(world, "ball")):
            self.touched = True

    def is_success(self, world) -> bool:
        """Touched, then let go: the fingers are clear of the ball again."""
        return self.touched and not touching(world, finger_body_ids(world), body_id(world, "ball"))

    def keepout(self, world):
        return [(body_pos(world, "post")[:2], 0.06)]

    def script(self, world, style: ExpertStyle) -> list[Move]:
        top = body_pos(world, "ball") + [0, 0, BALL_RADIUS + FINGERTIP_BEYOND_TCP_M]
        approach, closing = top_down_frame(top, style, tilt_scale=0.5)
        return [
            Move("close", gripper=GRIPPER_CLOSED_M, duration=0.5),
            Move("above ball", top + [0, 0, style.hover], approach, closing, duration=1.6, settle=True),
            Move("touch", top - [0, 0, 0.006], duration=0.9, settle=True, precise=True),
            Move("back off", top + [0, 0, style.hover], duration=0.8),
        ]


class PushSwitch(SourceTask, PressButton):
    """The button's mechanism with another look and other places: a square blue switch."""

    key = "push_switch"
    instruction = "push the blue switch down"
    episode_seconds = 12.0

    def worldbody_xml(self) -> str:
        return (
            super()
            .worldbody_xml()
            .replace('type="cylinder" size="0.022', 'type="box" size="0.02 0.02')
            .replace('rgba="0.85 0.1 0.1 1"', 'rgba="0.15 0.3 0.9 1"')
            .replace('rgba="0.25 0.25 0.28 1"', 'rgba="0.85 0.85 0.8 1"')
        )

    def place_objects(self, world, rng: np.random.Generator) -> None:
        self.was_pressed = False
        xy = sample_layout(rng, {"button": ((0.30, 0.44), (-0.28, 0.28))}, {"button": 0.05})["button"]
        set_fixed_pose(world, "button_base", [*xy, TABLE_Z], yaw=float(rng.uniform(-np.pi, np.pi)))

"""The follower and leader as lerobot sees them: registered types, its factories, its feature helpers."""

import pytest

from collect.limits import MOTOR_KEYS

pytestmark = pytest.mark.timeout(60)


def test_lerobot_builds_our_arms_from_their_registered_configs(follower_emulator):
    from lerobot.robots import RobotConfig
    from lerobot.robots.utils import make_robot_from_config
    from lerobot.teleoperators import TeleoperatorConfig
    from lerobot.teleoperators.utils import make_teleoperator_from_config

    from collect.follower import PiperFollower
    from collect.leader import PiperLeader

    follower_config = RobotConfig.get_choice_class("piper_follower")(
        port=follower_emulator.channel, interface="virtual"
    )
    robot = make_robot_from_config(follower_config)
    assert isinstance(robot, PiperFollower)
    teleop = make_teleoperator_from_config(TeleoperatorConfig.get_choice_class("piper_leader")(port="can1"))
    assert isinstance(teleop, PiperLeader) and list(teleop.action_features) == list(MOTOR_KEYS)
    robot.connect()
    try:
        observation = robot.get_observation()
        assert list(observation) == list(MOTOR_KEYS)
        assert observation["joint_2.pos"] == pytest.approx(1.57, abs=1e-3)
    finally:
        robot.disconnect()


def test_features_map_to_lerobot_dataset_features():
    from lerobot.utils.feature_utils import hw_to_dataset_features

    from collect.follower import PiperFollower, PiperFollowerConfig

    class FakeCamera:  # only its size matters for the features
        height, width, is_connected = 240, 320, False

    robot = PiperFollower(
        PiperFollowerConfig(port="unused"), cameras={"side": FakeCamera(), "wrist": FakeCamera()}
    )
    features = hw_to_dataset_features(robot.observation_features, "observation") | hw_to_dataset_features(
        robot.action_features, "action"
    )
    assert features["observation.state"]["names"] == list(MOTOR_KEYS)
    assert features["action"]["names"] == list(MOTOR_KEYS)
    assert features["observation.images.side"]["shape"] == (240, 320, 3)
    assert features["observation.images.wrist"]["shape"] == (240, 320, 3)

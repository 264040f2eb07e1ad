"""`PiperLeaderConfig`, registered with lerobot as teleoperator type "piper_leader".

Its own module, as lerobot lays out its devices: `make_teleoperator_from_config` finds
`collect.leader.PiperLeader` from this module's name (config_leader -> leader).
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.teleoperators import TeleoperatorConfig


@TeleoperatorConfig.register_subclass("piper_leader")
@dataclass(kw_only=True)
class PiperLeaderConfig(TeleoperatorConfig):
    port: str = "can0"
    interface: str = "socketcan"  # "socketcan" (real arm) or "virtual" (simulated arm)
    two_bus: bool = False
    frames_timeout_s: float = 2.0  # connect() waits this long for the first command frames
    stale_after_s: float = 0.5  # get_action() refuses commands older than this

"""A PiPER arm on a python-can bus, good enough for the unmodified `piper_sdk`.

    with PiperEmulator("sim-bus-1", role="follower") as arm:   # answers at 200 Hz
        sdk = open_sdk("sim-bus-1", interface="virtual")        # collect.sdk
        ...
        arm.control_frames()   # every control frame the PC (or a leader) put on the bus
        mark = arm.control_frame_count; ...; arm.control_frames(since=mark)   # those after `mark`
        arm.error              # why its thread stopped (a failing joint source), else None

Roles:
- follower: reports status, end pose, joints, gripper, high- and low-speed motor frames;
  obeys enable/disable (0x471), e-stop/resume (0x150), motion mode (0x151), joint and
  gripper control (0x155-0x159), end-pose control (0x152-0x154) in MOVE_P and MOVE_L
  (inverse kinematics on the SDK's DH model, `collect.ik_dh`); answers the limit (0x472)
  and firmware (0x4AF) queries.
  On a bus shared with a leader it follows the leader's control frames, as the real
  firmware's leader-follower linkage does.
- leader: a teach arm moved by a person (or the virtual operator, through its
  `JointSource`). It puts 0x151/0x155-0x157/0x159 control frames on the bus every tick
  and reports its own feedback on the shifted IDs 0x2Bx, which the SDK ignores.

Joints come from a `collect.joint_source.JointSource`: `FirstOrderJoints` (no physics)
by default, or the MuJoCo arm of `collect.sim`. The emulator runs its own thread at
`rate_hz`, or, with `manual=True`, a caller drives `tick(dt)`. `kick()` asks the thread
for a tick now: lockstep simulation kicks after each physics step (and after moving the
leader), so a new state is on the bus at once while the timer ticks only as a heartbeat.
Frames are encoded with `collect.can_protocol`, never with the SDK's encoder.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass

import can
import numpy as np

from collect import can_protocol as p
from collect.ik_dh import DhArm, Pose, interpolate
from collect.joint_source import FirstOrderJoints, JointSource

log = logging.getLogger(__name__)

ROLES = ("follower", "leader")
LOW_SPEED_EVERY_TICKS = 10  # 20 Hz at 200 Hz, like the real arm's slower motor reports
CONTROL_LOG_SIZE = 50_000  # the newest frames kept: ~50 s of a leader's traffic, ~10 MB
KICK_POLL_S = 0.002  # between ticks, how often the thread looks for a kick
# MOVE_L at 100 % speed (0x151 byte 2 scales it): chosen figures, the vendor publishes none.
LINE_SPEED_MM_S = 200.0
LINE_TURN_DEG_S = 90.0
# Before a MOVE_L starts, its line is solved at points this far apart: one it cannot finish
# is refused while the arm still stands.
LINE_CHECK_MM = 10.0
LINE_CHECK_DEG = 5.0
END_POSE_MOVE_MODES = (p.MOVE_MODE_P, p.MOVE_MODE_L)
OBEYED_MOVE_MODES = (p.MOVE_MODE_P, p.MOVE_MODE_JOINT, p.MOVE_MODE_L)


@dataclass
class _Line:
    """A MOVE_L in progress: the flange goes from `start` to `end` in `duration_s`."""

    start: Pose
    end: Pose
    duration_s: float
    q: np.ndarray  # the joints solved for the latest point: the next solve continues from them
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class ControlFrame:
    """A control frame as it appeared on the bus (for tests and the safety audit)."""

    arbitration_id: int
    data: bytes
    timestamp: float
    seq: int  # 0, 1, 2, ... in order of arrival over the emulator's life


class PiperEmulator:
    def __init__(
        self,
        channel: str,
        role: str = "follower",
        *,
        interface: str = "virtual",
        rate_hz: float = 200.0,
        joint_source: JointSource | None = None,
        manual: bool = False,
        firmware: str = "S-V1.6-3",
        end_pose: bool = True,
        control_log_size: int = CONTROL_LOG_SIZE,
    ):
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        self.channel = channel
        self.interface = interface
        self.role = role
        self.rate_hz = rate_hz
        self.kick_poll_s = KICK_POLL_S  # read each wait: an idle simulation looks less often
        self.manual = manual
        self.firmware = firmware
        self.joints = joint_source or FirstOrderJoints()
        self._fk, self._ik = _sdk_kinematics() if end_pose else (None, None)
        # protocol state (touched only by the thread that ticks)
        self.enabled = [False] * 6
        self.gripper_enabled = False
        self.estop = False
        self.ctrl_mode = p.CTRL_MODE_LEADER if role == "leader" else p.CTRL_MODE_STANDBY
        self.move_mode = p.MOVE_MODE_JOINT
        self.speed_percent = 0
        self.limit_error_bits = 0
        self.no_solution = False  # the last end-pose target was unreachable (0x2A1 arm_status 0x02)
        self.feedback_offset = p.LEADER_FEEDBACK_OFFSET if role == "leader" else 0
        # A leader can be silenced (a policy drives the follower on a shared bus in evaluation).
        self.sends_commands = True
        self._target_mdeg = [p.rad_to_mdeg(q) for q in self.joints.read().positions_rad]
        self._gripper_target_um = p.m_to_um(self.joints.read().gripper_m)
        self._motion_allowed: bool | None = None  # the six joints obey commands
        self._gripper_allowed: bool | None = None  # the gripper obeys 0x159, in any control mode
        self._source_allowed: bool | None = None  # what the joint source was told
        self._end_pose_frames: list[tuple[int, int] | None] = [None, None, None]  # 0x152-0x154
        self._last_end_pose: tuple[int, ...] | None = None  # (move mode, 6 values) carried out
        self._line: _Line | None = None
        # statistics
        self.ticks = 0
        self.frames_sent = 0
        self.frames_received = 0
        self.malformed_frames = 0  # ignored, as the firmware ignores them
        self.error: Exception | None = None  # why the emulator's own thread stopped, if it did
        self._control_log: collections.deque[ControlFrame] = collections.deque(maxlen=control_log_size)
        self._control_count = 0
        self._log_lock = threading.Lock()
        self._bus: can.BusABC | None = None
        self._stop = threading.Event()
        self._kicked = threading.Event()
        self._reaim_requested = threading.Event()
        self._reaimed = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> PiperEmulator:
        if self._bus is None:
            self._bus = can.Bus(interface=self.interface, channel=self.channel, receive_own_messages=False)
        self._update_motion_allowed()
        if not self.manual and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"PiperEmulator-{self.role}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._bus is not None:
            self._bus.shutdown()
            self._bus = None

    def __enter__(self) -> PiperEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._bus is not None

    # -- what tests and the GUI look at ----------------------------------------------------
    def control_frames(self, ids: frozenset[int] | None = None, since: int = 0) -> list[ControlFrame]:
        """Commands received (0x150-0x159, 0x470, 0x471: `can_protocol.COMMAND_IDS`), oldest first.

        `since`: only frames with `seq >= since`; pass `control_frame_count` taken earlier to
        get what arrived after that moment (stays right when old frames have been dropped).
        """
        with self._log_lock:
            frames = list(self._control_log)
        return [f for f in frames if f.seq >= since and (ids is None or f.arbitration_id in ids)]

    @property
    def control_frame_count(self) -> int:
        """How many control frames arrived so far (the `seq` the next one will get)."""
        return self._control_count

    def joint_targets_mdeg(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self._target_mdeg)

    @property
    def motion_allowed(self) -> bool:
        return bool(self._motion_allowed)

    @property
    def gripper_allowed(self) -> bool:
        return bool(self._gripper_allowed)

    def aim_where_the_arm_is(self, timeout_s: float = 5.0) -> bool:
        """The world was moved under the arm (a simulation reset): from now on a part that may
        not move holds where it now is, not where it stood before. Any thread may call this; it
        returns once the ticking thread has done it (False after `timeout_s`)."""
        if self._thread is None or not self._thread.is_alive():  # manual mode, or a stopped thread
            self._aim_at_current_pose()
            return True
        self._reaimed.clear()
        self._reaim_requested.set()
        self.kick()
        return self._reaimed.wait(timeout_s)

    def _aim_at_current_pose(self) -> None:
        state = self.joints.read()
        self._target_mdeg = [math.degrees(q) * 1000.0 for q in state.positions_rad]
        self._gripper_target_um = p.m_to_um(state.gripper_m)
        self._line, self._last_end_pose = None, None

    # -- one cycle ------------------------------------------------------------------------
    def tick(self, dt: float | None = None) -> None:
        """Handle what arrived, move the joints by `dt`, report. Manual mode calls this."""
        dt = dt if dt is not None else 1.0 / self.rate_hz
        self._drain(timeout=0.0)
        self._follow_line(dt)
        self.joints.advance(dt)
        self._send_feedback()
        self.ticks += 1

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # noqa: BLE001 - a dead arm goes silent, as a real one would; say why
            if self._stop.is_set():
                return
            self.error = exc
            log.exception("emulator %s on %s stopped", self.role, self.channel)

    def kick(self) -> None:
        """Tick as soon as the thread can (any thread may call this): there is a new state to report."""
        self._kicked.set()

    def _loop(self) -> None:
        next_tick = time.perf_counter()
        last_tick = next_tick - 1.0 / self.rate_hz
        while not self._stop.is_set():
            period = 1.0 / self.rate_hz  # read each tick: a simulation may change it
            self._kicked.clear()
            now = time.perf_counter()
            self.tick(min(now - last_tick, period))
            last_tick = now
            next_tick += period
            # Wait for the next tick (or a kick) while answering commands as they arrive.
            while (remaining := next_tick - time.perf_counter()) > 0 and not self._stop.is_set():
                if self._kicked.is_set():  # tick now; the timer counts again from this tick
                    next_tick = time.perf_counter()
                    break
                self._drain(timeout=min(remaining, self.kick_poll_s))
            if -remaining > 10 * period:  # fell far behind (a loaded machine): do not race to catch up
                next_tick = time.perf_counter()

    def _drain(self, timeout: float) -> None:
        if self._reaim_requested.is_set():  # before any command that would aim from the old pose
            self._reaim_requested.clear()
            self._aim_at_current_pose()
            self._reaimed.set()
        bus = self._bus
        if bus is None:
            return
        msg = bus.recv(timeout=timeout)
        while msg is not None:
            self.frames_received += 1
            self._handle(msg)
            msg = bus.recv(timeout=0.0)

    # -- receiving ------------------------------------------------------------------------
    def _handle(self, msg: can.Message) -> None:
        frame_id, data = msg.arbitration_id, bytes(msg.data)
        if len(data) != 8 or msg.is_extended_id:  # every PiPER frame is standard with DLC 8
            self.malformed_frames += 1
            return
        if frame_id in p.COMMAND_IDS:
            with self._log_lock:
                self._control_log.append(ControlFrame(frame_id, data, msg.timestamp, self._control_count))
                self._control_count += 1
        if frame_id == p.MASTER_SLAVE_CONFIG:
            self._configure_role(data)
        elif self.role == "leader":
            return  # a teach arm ignores commands meant for a follower
        elif frame_id in p.JOINT_CTRL:
            self._on_joint_ctrl(frame_id, data)
        elif frame_id == p.GRIPPER_CTRL:
            self._on_gripper_ctrl(data)
        elif frame_id == p.MOTION_CTRL_2:
            self._on_motion_ctrl_2(data)
        elif frame_id in p.END_POSE_CTRL:
            self._on_end_pose_ctrl(frame_id, data)
        elif frame_id == p.MOTOR_ENABLE:
            self._on_enable(motor=data[0], flag=data[1])
        elif frame_id == p.MOTION_CTRL_1:
            self._on_estop(data[0])
        elif frame_id == p.QUERY_MOTOR_LIMITS:
            self._answer_limit_query(motor=data[0], what=data[1])
        elif frame_id == p.FIRMWARE and data[0] == 0x01:
            blob = (self.firmware + "\0").encode().ljust(16, b"\0")
            for start in range(0, len(blob), 8):
                self._send(p.FIRMWARE, blob[start : start + 8])
        self._update_motion_allowed()

    def _on_joint_ctrl(self, frame_id: int, data: bytes) -> None:
        if not (self._motion_allowed and self.move_mode == p.MOVE_MODE_JOINT):
            return  # a held arm keeps holding; re-enabling must not jump to a target sent meanwhile
        first = p.JOINT_CTRL.index(frame_id) * 2
        for joint, value in zip((first, first + 1), p.unpack_i32_pair(data), strict=True):
            low, high = p.JOINT_LIMITS_MDEG[joint]
            outside = not (low <= value <= high)
            # The real arm refuses to leave its limits and flags the joint.
            bit = 1 << (8 + joint)
            self.limit_error_bits = (
                (self.limit_error_bits | bit) if outside else (self.limit_error_bits & ~bit)
            )
            self._target_mdeg[joint] = min(max(value, low), high)
        self.no_solution = False
        self._command_joints()

    def _on_motion_ctrl_2(self, data: bytes) -> None:
        move_mode = data[1]
        if move_mode != self.move_mode:  # a new mode starts afresh: no line, no remembered target
            self._line, self._last_end_pose = None, None
        self.ctrl_mode, self.move_mode, self.speed_percent = data[0], move_mode, data[2]

    def _on_end_pose_ctrl(self, frame_id: int, data: bytes) -> None:
        self._end_pose_frames[p.END_POSE_CTRL.index(frame_id)] = p.unpack_i32_pair(data)
        if frame_id != p.END_POSE_CTRL[-1] or None in self._end_pose_frames:
            return  # the SDK sends 0x152, 0x153, 0x154: the pose is complete with the last
        values = tuple(v for pair in self._end_pose_frames for v in pair)
        self._end_pose_frames = [None, None, None]
        if self._ik is None or not (self._motion_allowed and self.move_mode in END_POSE_MOVE_MODES):
            return
        if (self.move_mode, *values) == self._last_end_pose:
            return  # the vendor's demos repeat one target at 100 Hz: it is under way (or refused)
        self._last_end_pose = (self.move_mode, *values)
        xyz_rpy = p.end_pose_from_bus(values)
        target = Pose.from_xyz_rpy(xyz_rpy[:3], xyz_rpy[3:])
        q_now = np.array(self.joints.read().positions_rad)
        if self.move_mode == p.MOVE_MODE_P:
            self._move_p(target, q_now)
        else:
            self._move_l(target, q_now)

    def _move_p(self, target: Pose, q_now: np.ndarray) -> None:
        """Joint-space motion to the solution nearest the current joints."""
        q = self._ik.solve(target, q_now)
        if q is None:
            self._refuse_pose()
            return
        self.no_solution, self._line = False, None
        self._aim_joints(q)

    def _move_l(self, target: Pose, q_now: np.ndarray) -> None:
        """The flange along a straight line from where it is, at the 0x151 speed."""
        start = self._ik.forward(q_now)
        dist_mm, turn_rad = start.distance_to(target)
        steps = max(1, math.ceil(max(dist_mm / LINE_CHECK_MM, math.degrees(turn_rad) / LINE_CHECK_DEG)))
        q = q_now
        for k in range(1, steps + 1):
            q = self._ik.track(interpolate(start, target, k / steps), q)
            if q is None:
                self._refuse_pose()
                return
        speed = max(self.speed_percent, 1) / 100.0
        duration = max(dist_mm / LINE_SPEED_MM_S, math.degrees(turn_rad) / LINE_TURN_DEG_S) / speed
        self.no_solution = False
        self._line = _Line(start, target, duration, q_now)

    def _follow_line(self, dt: float) -> None:
        """The next point of a MOVE_L, solved once per tick."""
        line = self._line
        if line is None:
            return
        line.elapsed_s += dt
        s = min(1.0, line.elapsed_s / line.duration_s) if line.duration_s > 0 else 1.0
        q = self._ik.track(interpolate(line.start, line.end, s), line.q)
        if q is None:  # checked before it started, so only a rare numeric failure lands here
            self._refuse_pose()
            return
        line.q = q
        self._aim_joints(q)
        if s >= 1.0:
            self._line = None

    def _refuse_pose(self) -> None:
        """An unreachable pose: report NO_SOLUTION and hold where the arm is."""
        self.no_solution, self._line = True, None
        self._aim_joints(self.joints.read().positions_rad)

    def _aim_joints(self, q_rad) -> None:
        """Joint targets from the arm's own planning, inside the limits joint control keeps."""
        self._target_mdeg = [
            min(max(math.degrees(v) * 1000.0, low), high)
            for v, (low, high) in zip(q_rad, p.JOINT_LIMITS_MDEG, strict=True)
        ]
        self._command_joints()

    def _on_gripper_ctrl(self, data: bytes) -> None:
        stroke_um, _effort, code, set_zero = p.unpack_gripper_ctrl(data)
        if code in (0x01, 0x03):
            self.gripper_enabled = True
        elif code in (0x00, 0x02):
            self.gripper_enabled = False
        self._update_motion_allowed()  # code 0x01 enables the gripper for this very frame
        if not self._gripper_allowed:
            return
        self._gripper_target_um = min(max(stroke_um, 0), p.GRIPPER_MAX_UM)
        if set_zero == 0xAE:
            self._gripper_target_um = 0
        self._command_joints()

    def _command_joints(self) -> None:
        """Send the targets to the joint source; a part that may not move carries where it is."""
        if self._source_allowed:
            self.joints.command(
                tuple(p.mdeg_to_rad(v) for v in self._target_mdeg), p.um_to_m(self._gripper_target_um)
            )

    def _on_enable(self, motor: int, flag: int) -> None:
        on = flag == p.ENABLE_FLAG
        if on and self.estop:
            return  # an arm in e-stop stays powered down until resumed
        motors = range(6) if motor in (7, 0xFF) else ([motor - 1] if 1 <= motor <= 6 else [])
        for joint in motors:
            self.enabled[joint] = on
        if motor in (7, 0xFF):
            self.gripper_enabled = on

    def _on_estop(self, code: int) -> None:
        if code == p.ESTOP_STOP:
            self.estop = True
        elif code == p.ESTOP_RESUME:
            # Resume clears errors and powers the motors down; the PC enables again.
            self.estop = False
            self.limit_error_bits = 0
            self.no_solution = False
            self.enabled = [False] * 6
            self.gripper_enabled = False
            self.ctrl_mode = p.CTRL_MODE_STANDBY

    def _configure_role(self, data: bytes) -> None:
        if data[0] == p.LEADER_CONFIG:
            self.role, self.ctrl_mode, self.feedback_offset = "leader", p.CTRL_MODE_LEADER, data[1] or 0x10
        elif data[0] == p.FOLLOWER_CONFIG:
            self.role, self.ctrl_mode, self.feedback_offset = "follower", p.CTRL_MODE_STANDBY, 0

    def _answer_limit_query(self, motor: int, what: int) -> None:
        if not 1 <= motor <= 6:
            return
        low, high = p.JOINT_LIMITS_MDEG[motor - 1]
        if what == 0x01:
            self._send(p.MOTOR_LIMITS_REPLY, p.pack_limits_reply(motor, high, low, 3000))
        elif what == 0x02:
            self._send(p.MOTOR_MAX_ACC_REPLY, p.pack_max_acc_reply(motor, 500))

    def _update_motion_allowed(self) -> None:
        leader = self.role == "leader"
        arm = leader or (
            all(self.enabled)
            and self.ctrl_mode == p.CTRL_MODE_CAN
            and not self.estop
            and self.move_mode in OBEYED_MOVE_MODES
        )
        # The vendor's demos drive the gripper right after enabling, in standby: its own
        # enable (0x471 motor 7/0xFF, or 0x159 code 0x01) is all it needs.
        gripper = leader or (self.gripper_enabled and not self.estop)
        stopped = False
        if arm != self._motion_allowed:
            self._motion_allowed = arm
            if not arm:  # hold here (unrounded: holding must not move); re-enabling must not jump
                stopped = True
                self._line, self._last_end_pose = None, None
                self._target_mdeg = [math.degrees(q) * 1000.0 for q in self.joints.read().positions_rad]
        if gripper != self._gripper_allowed:
            self._gripper_allowed = gripper
            if not gripper:
                stopped = True
                self._gripper_target_um = p.m_to_um(self.joints.read().gripper_m)
        source = arm or gripper
        if source != self._source_allowed:
            self._source_allowed = source
            self.joints.set_motion_allowed(source)
        elif source and stopped:
            self._command_joints()  # one part stopped while the other may move: hold it where it is

    # -- sending ----------------------------------------------------------------------------
    def _send(self, frame_id: int, data: bytes) -> None:
        bus = self._bus
        if bus is None:
            return
        bus.send(can.Message(arbitration_id=frame_id, data=data, is_extended_id=False))
        self.frames_sent += 1

    def _arm_status(self) -> int:
        if self.estop:
            return p.ARM_STATUS_ESTOP
        if self.no_solution:
            return p.ARM_STATUS_NO_SOLUTION
        return p.ARM_STATUS_JOINT_LIMIT if self.limit_error_bits else p.ARM_STATUS_NORMAL

    def _send_feedback(self) -> None:
        state = self.joints.read()
        q_mdeg = [p.rad_to_mdeg(q) for q in state.positions_rad]
        off = self.feedback_offset
        moving = any(abs(v) > 1e-3 for v in state.velocities_rad_s)
        self._send(
            p.ARM_STATUS + off,
            p.pack_status(
                self.ctrl_mode, self._arm_status(), self.move_mode, int(moving), self.limit_error_bits
            ),
        )
        if self._fk is not None:
            pose = self._fk.CalFK([math.radians(v / 1000.0) for v in q_mdeg])[-1]
            xyz_rpy = p.end_pose_to_bus(pose)
            for frame_id, pair in zip(p.END_POSE, (xyz_rpy[0:2], xyz_rpy[2:4], xyz_rpy[4:6]), strict=True):
                self._send(frame_id + off, p.pack_i32_pair(*pair))
        for k, frame_id in enumerate(p.JOINT_FEEDBACK):
            self._send(frame_id + off, p.pack_i32_pair(q_mdeg[2 * k], q_mdeg[2 * k + 1]))
        self._send(
            p.GRIPPER_FEEDBACK + off,
            p.pack_gripper_feedback(
                p.m_to_um(state.gripper_m), round(state.gripper_effort_nm * 1000), self.gripper_enabled
            ),
        )
        if off == 0:
            for j in range(6):
                self._send(
                    p.HIGH_SPEED_BASE + j,
                    p.pack_high_speed(
                        round(state.velocities_rad_s[j] * 1000), 0, round(state.positions_rad[j] * 1000)
                    ),
                )
            if self.ticks % LOW_SPEED_EVERY_TICKS == 0:
                for j in range(6):
                    self._send(p.LOW_SPEED_BASE + j, p.pack_low_speed(self.enabled[j]))
        if self.role == "leader" and self.sends_commands:
            self._send_leader_commands(q_mdeg, p.m_to_um(state.gripper_m))

    def _send_leader_commands(self, q_mdeg: list[int], gripper_um: int) -> None:
        """What a teach arm puts on the bus for its follower (and what the PC reads as the action)."""
        self._send(p.MOTION_CTRL_2, p.pack_motion_ctrl_2(p.CTRL_MODE_CAN, p.MOVE_MODE_JOINT, 100))
        for k, frame_id in enumerate(p.JOINT_CTRL):
            self._send(frame_id, p.pack_i32_pair(q_mdeg[2 * k], q_mdeg[2 * k + 1]))
        self._send(p.GRIPPER_CTRL, p.pack_gripper_ctrl(gripper_um, 1000, 0x01))


def _sdk_kinematics():
    """The SDK's own FK (modified DH, offset table), so the end pose agrees with the real arm,
    and the IK on the same table; (None, None) without the SDK (no end-pose frames, no end-pose control)."""
    try:
        from piper_sdk.kinematics.piper_fk import C_PiperForwardKinematics
    except ImportError:  # the SDK is a dependency; this is only a fallback
        return None, None
    return C_PiperForwardKinematics(0x01), DhArm.from_sdk()

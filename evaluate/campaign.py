"""Evaluation campaigns: runs x tasks x trials, the trial flow and its persistence.

A trial goes reset -> run -> score. In sim the task predicate scores it the moment the
rollout ends (the operator may override it afterwards); on the real arm the operator
clicks Success or Failure. Each score is committed to the results store at once, so a
campaign resumes after a crash from whatever is in the database: the pending slots
are simply the ones without a live scored row.

`Campaign` is the state machine (no threads, no hardware); `run_campaign` drives it
headless with a `TrialExecutor` (see `evaluate.rollout`). The GUI drives the same
object from a worker thread.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Protocol

from evaluate.store import ResultsStore, ResultsStoreError, RunInfo, TrialRecord

DEFAULT_TRIALS = 15  # the paper's trials per task
ESTOP_NOTE = "E-STOP"


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    runs: tuple[str, ...]
    tasks: tuple[str, ...]
    trials: int = DEFAULT_TRIALS
    backend: str = "sim"  # "sim" | "piper"
    seed: int = 0  # base seed of the sim resets; the same scenes for every run
    perturbation: str = "none"  # sim robustness presets, e.g. "lighting+camera" (collect.sim.perturb)
    checkpoint: str = "last"
    eta: float | None = None  # LoRA-SP energy threshold at inference; None keeps the trained one
    max_duration_s: float = 30.0
    save_episodes: bool = False
    # Sim scenes given per task (e.g. a recorded dataset's episode seeds, to test memorisation);
    # trial i of a task gets its i-th seed. Empty: seeds derived from `seed`.
    scene_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.runs or not self.tasks:
            raise ValueError("a campaign needs at least one run and one task")
        if self.trials < 1:
            raise ValueError(f"trials per task must be >= 1, got {self.trials}")
        if self.backend not in ("sim", "piper"):
            raise ValueError(f"backend must be 'sim' or 'piper', got {self.backend!r}")
        from collect.sim.perturb import parse_perturbations  # numpy only; raises with the known names

        object.__setattr__(self, "perturbation", parse_perturbations(self.perturbation).name or "none")
        if self.eta is not None and not 0.0 < self.eta <= 1.0:
            raise ValueError(f"eta must be in (0, 1], got {self.eta}")
        object.__setattr__(
            self, "scene_seeds", {t: tuple(int(v) for v in s) for t, s in self.scene_seeds.items()}
        )
        for task in self.tasks if self.scene_seeds else ():
            have = len(self.scene_seeds.get(task, ()))
            if have < self.trials:
                raise ValueError(
                    f"only {have} scene seeds given for {task!r}, {self.trials} trials asked: "
                    f"ask for --trials {have} or fewer, or record more {task} episodes"
                )

    @property
    def auto_scored(self) -> bool:
        return self.backend == "sim"

    def seed_for(self, task: str, trial_index: int) -> int:
        """Deterministic per (task, trial) and independent of the run: runs see the same scenes."""
        if self.scene_seeds:
            return self.scene_seeds[task][trial_index]
        return self.seed * 100_003 + (zlib.crc32(task.encode()) % 10_000) * 1000 + trial_index

    def slots(self) -> list[TrialSlot]:
        # Task-major: the scene (real props, or the sim world) is set up once per task.
        return [
            TrialSlot(run, task, i, self.seed_for(task, i))
            for task in self.tasks
            for run in self.runs
            for i in range(self.trials)
        ]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> CampaignSpec:
        known = cls.__dataclass_fields__
        values = {k: v for k, v in raw.items() if k in known}
        values["runs"], values["tasks"] = tuple(values["runs"]), tuple(values["tasks"])
        return cls(**values)


@dataclass(frozen=True)
class TrialSlot:
    run: str
    task: str
    trial_index: int
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.run, self.task, self.trial_index)


@dataclass(frozen=True)
class RolloutResult:
    """What a rollout reports; `success` is the sim predicate (None on the real arm)."""

    duration_s: float
    success: bool | None = None
    aborted: bool = False
    episode_ref: str = ""
    steps: int = 0


class TrialExecutor(Protocol):
    def reset(self, slot: TrialSlot) -> None:
        """Put the scene in its start state: seeded reset in sim; on the real arm, home the arm."""

    def run(self, slot: TrialSlot, stop: threading.Event) -> RolloutResult:
        """Run the policy until done, the time limit, or `stop` is set (abort)."""

    def close(self) -> None:
        """Release what the executor opened (env, evaluation episodes); never the arm."""


class State(Enum):
    READY = "ready"  # between trials
    RESETTING = "resetting"
    RUNNING = "running"
    AWAITING_SCORE = "awaiting_score"  # real arm: the operator decides
    PAUSED = "paused"
    DONE = "done"


class CampaignError(RuntimeError):
    pass


@dataclass
class _Current:
    slot: TrialSlot
    started: float = 0.0
    result: RolloutResult | None = None


@dataclass
class Campaign:
    """One campaign's trial flow over a results store. Thread-safe; every method is quick."""

    store: ResultsStore
    spec: CampaignSpec
    state: State = State.READY
    listeners: list[Callable[[Campaign], None]] = field(default_factory=list)
    _current: _Current | None = None
    _pause_requested: bool = False
    _estop_hold: bool = False  # set by estop(); only release_estop() (the arm was released) clears it
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- creation and resumption -----------------------------------------------------

    @classmethod
    def create(cls, store: ResultsStore, spec: CampaignSpec, runs: list[RunInfo] | None = None) -> Campaign:
        store.create_campaign(spec.name, spec.backend, spec.to_dict())
        for info in runs or [RunInfo(spec.name, run) for run in spec.runs]:
            store.register_run(RunInfo(**(asdict(info) | {"campaign": spec.name})))
        return cls(store, spec)

    @classmethod
    def open(cls, store: ResultsStore, name: str) -> Campaign:
        """Resume a campaign from the database; its pending slots are those without a score."""
        info = store.campaign(name)
        campaign = cls(store, CampaignSpec.from_dict(info.spec))
        if info.status == "paused":
            campaign.state = State.PAUSED
        elif not campaign.pending():
            campaign.state = State.DONE
        return campaign

    @classmethod
    def open_or_create(
        cls, store: ResultsStore, spec: CampaignSpec, runs: list[RunInfo] | None = None
    ) -> Campaign:
        if not store.has_campaign(spec.name):
            return cls.create(store, spec, runs)
        stored = CampaignSpec.from_dict(store.campaign(spec.name).spec)
        if stored != spec:
            raise ResultsStoreError(
                f"campaign {spec.name!r} exists with different settings ({_spec_diff(stored, spec)}); "
                "resume it with the same settings or choose a new name"
            )
        return cls.open(store, spec.name)

    # -- queries ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def current(self) -> TrialSlot | None:
        return self._current.slot if self._current else None

    @property
    def last_result(self) -> RolloutResult | None:
        return self._current.result if self._current else None

    def scored(self) -> list[TrialRecord]:
        return self.store.trials(self.name)

    def pending(self) -> list[TrialSlot]:
        done = {t.slot for t in self.scored()}
        return [s for s in self.spec.slots() if s.key not in done]

    def progress(self) -> tuple[int, int]:
        total = len(self.spec.slots())
        return total - len(self.pending()), total

    def summary(self) -> str:
        """What the page and `piper-ws eval` show, e.g. '1 / 2 trials scored, 1 aborted'
        (the counts of `ResultsStore.counts`, which `piper-ws results` prints)."""
        done, total = self.progress()
        aborted = self.store.counts(self.name)["aborted"]
        return f"{done} / {total} trials scored" + (f", {aborted} aborted" if aborted else "")

    def _run_info(self, run: str) -> RunInfo:
        for info in self.store.runs(self.name):
            if info.run == run:
                return info
        return RunInfo(self.name, run)

    # -- the trial flow --------------------------------------------------------------

    def start_trial(self, slot: TrialSlot | None = None) -> TrialSlot | None:
        """Take the next pending slot (or the given one) into RESETTING; None when finished or paused."""
        with self._lock:
            if self.state is State.PAUSED:
                return None
            self._expect(State.READY, State.DONE)
            if slot is None:
                pending = self.pending()
                if not pending:
                    self._set(State.DONE)
                    self.store.set_campaign_status(self.name, "done")
                    return None
                slot = pending[0]
            self._current = _Current(slot)
            self.store.set_campaign_status(self.name, "running")
            self._set(State.RESETTING)
            return slot

    def mark_running(self) -> None:
        with self._lock:
            self._expect(State.RESETTING)
            self._current.started = time.monotonic()
            self._set(State.RUNNING)

    def finish_run(self, result: RolloutResult) -> TrialRecord | None:
        """The rollout ended. Sim: the predicate's score is committed now. Real: wait for `score`."""
        with self._lock:
            self._expect(State.RUNNING)
            self._current.result = result
            if self._estop_hold:  # e-stopped before the rollout was scored: the trial is void
                return self._commit_abort(ESTOP_NOTE)
            if result.aborted:
                return self._commit_abort("stopped during the rollout")
            if self.spec.auto_scored and result.success is not None:
                outcome = "success" if result.success else "failure"
                record = self._commit(self._current.slot, outcome, "predicate", outcome, "")
                self._set(State.READY)
                return record
            self._set(State.AWAITING_SCORE)
            return None

    def score(self, success: bool, note: str = "") -> TrialRecord:
        """The operator's verdict on the trial just run (real arm), committed at once."""
        with self._lock:
            self._expect(State.AWAITING_SCORE)
            predicate = self._current.result.success if self._current.result else None
            record = self._commit(
                self._current.slot,
                "success" if success else "failure",
                "operator",
                None if predicate is None else ("success" if predicate else "failure"),
                note,
            )
            self._set(State.READY)
            return record

    def override(self, slot_key: tuple[str, str, int], success: bool, note: str = "") -> TrialRecord:
        """The operator overrides a scored trial (e.g. the sim predicate); the old row is kept, superseded."""
        with self._lock:
            live = [t for t in self.scored() if t.slot == slot_key]
            if not live:
                raise CampaignError(f"trial {slot_key} has no score to override yet")
            previous = live[-1]
            slot = TrialSlot(previous.run, previous.task, previous.trial_index, previous.seed)
            return self._commit(
                slot,
                "success" if success else "failure",
                "override",
                previous.predicate_outcome,
                note,
                duration_s=previous.duration_s,
                episode_ref=previous.episode_ref,
            )

    def abort(self, note: str | None = None) -> TrialRecord | None:
        """Abort the current trial: an 'aborted' row is kept for the record, the slot stays pending."""
        with self._lock:
            if self.state not in (State.RESETTING, State.RUNNING, State.AWAITING_SCORE):
                return None
            return self._commit_abort(note or (ESTOP_NOTE if self._estop_hold else "aborted by the operator"))

    def rerun(self, slot_key: tuple[str, str, int]) -> TrialSlot:
        """Re-run a trial: its score stops counting (kept, superseded) and the slot is pending again."""
        with self._lock:
            run, task, index = slot_key
            self.store.reopen_trial(self.name, run, task, index)
            if self.state is State.DONE:
                self._set(State.READY)
            return TrialSlot(run, task, index, self.spec.seed_for(task, index))

    def pause(self) -> None:
        """Stop after the current trial; the campaign resumes from the database later."""
        with self._lock:
            self.store.set_campaign_status(self.name, "paused")
            if self.state in (State.READY, State.DONE):
                self._set(State.PAUSED)
            else:
                self._pause_requested = True

    def estop(self) -> None:
        """The arm was e-stopped: pause now and hold the pause until `release_estop()`.

        A trial in flight is not scored: the caller aborts it (`abort`, or the rollout ends
        aborted), which commits an 'aborted' row and lands in PAUSED, never in a re-run.
        """
        with self._lock:
            self._estop_hold = True
            self.store.set_campaign_status(self.name, "paused")
            if self.state in (State.READY, State.DONE, State.PAUSED):
                self._set(State.PAUSED)
            else:
                self._pause_requested = True

    def release_estop(self) -> None:
        """The arm left e-stop (Resume on the Station). The campaign stays paused until `resume()`."""
        with self._lock:
            self._estop_hold = False

    @property
    def estop_held(self) -> bool:
        return self._estop_hold

    def resume(self) -> None:
        with self._lock:
            if self._estop_hold:
                raise CampaignError(
                    "the arm is e-stopped: release it with Resume on the Station page, then resume the campaign"
                )
            self._pause_requested = False
            self.store.set_campaign_status(self.name, "running")
            if self.state is State.PAUSED:
                self._set(State.READY)

    @property
    def pause_requested(self) -> bool:
        return self._pause_requested or self.state is State.PAUSED

    # -- internals -------------------------------------------------------------------

    def _commit(
        self,
        slot: TrialSlot,
        outcome: str,
        scorer: str,
        predicate_outcome: str | None,
        note: str,
        duration_s: float | None = None,
        episode_ref: str | None = None,
    ) -> TrialRecord:
        info = self._run_info(slot.run)
        result = self._current.result if self._current and self._current.slot == slot else None
        if duration_s is None and result is not None:
            duration_s = result.duration_s
        if episode_ref is None:
            episode_ref = result.episode_ref if result else ""
        return self.store.add_trial(
            TrialRecord(
                campaign=self.name,
                run=slot.run,
                strategy=info.strategy,
                checkpoint=info.checkpoint or self.spec.checkpoint,
                task=slot.task,
                trial_index=slot.trial_index,
                outcome=outcome,
                scorer=scorer,
                predicate_outcome=predicate_outcome,
                duration_s=duration_s,
                seed=slot.seed if self.spec.backend == "sim" else None,
                note=note,
                episode_ref=episode_ref or "",
            )
        )

    def _commit_abort(self, note: str) -> TrialRecord:
        elapsed = time.monotonic() - self._current.started if self._current.started else 0.0
        record = self._commit(self._current.slot, "aborted", "operator", None, note, duration_s=elapsed)
        self._set(State.READY)
        return record

    def _expect(self, *states: State) -> None:
        if self.state not in states:
            allowed = ", ".join(s.value for s in states)
            raise CampaignError(f"campaign {self.name!r} is {self.state.value}; this needs it {allowed}")

    def _set(self, state: State) -> None:
        if state is State.READY and self._pause_requested:
            self._pause_requested = False
            state = State.PAUSED
        self.state = state
        for listener in list(self.listeners):
            listener(self)


def _spec_diff(a: CampaignSpec, b: CampaignSpec) -> str:
    da, db = a.to_dict(), b.to_dict()
    return ", ".join(f"{k}: {da[k]!r} vs {db[k]!r}" for k in da if da[k] != db[k])


def run_campaign(
    campaign: Campaign,
    executor: TrialExecutor,
    stop: threading.Event | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
) -> None:
    """Drive a sim campaign to the end (or until paused/stopped), committing each trial.

    Needs an auto-scoring backend: on the real arm the operator scores in the GUI.
    """
    if not campaign.spec.auto_scored:
        raise CampaignError("the real arm needs an operator to score each trial: use the Evaluate page")
    stop = stop or threading.Event()
    if campaign.state is State.PAUSED:
        campaign.resume()
    while not stop.is_set() and not campaign.pause_requested:
        slot = campaign.start_trial()
        if slot is None:
            return
        executor.reset(slot)
        campaign.mark_running()
        record = campaign.finish_run(executor.run(slot, stop))
        if record is not None and on_trial is not None:
            on_trial(record)

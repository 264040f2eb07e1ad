"""`CampaignDriver`: a campaign on a worker thread with the operator in the loop.

The Evaluate page (or any front end) calls the verbs below from its own thread; they
only post a command and return. The worker owns the executor (the sim env's renderer is
bound to the thread that made it) and reports through `on_event(kind, payload)`:

| kind      | payload          | when                                                    |
|-----------|------------------|---------------------------------------------------------|
| `trial`   | TrialSlot        | a trial starts; on the real arm: reset the scene, then `go()` |
| `tick`    | TickInfo         | after each control tick (camera frames for live views)  |
| `await`   | RolloutResult    | real arm: the rollout ended, `score()` it               |
| `scored`  | TrialRecord      | a score (predicate, operator, override) was committed   |
| `aborted` | TrialRecord      | a trial was aborted (kept on record, slot stays pending)|
|           |                  | after `estop()` the campaign is then paused, not re-run |
| `state`   | State            | the campaign's state changed                            |
| `done`    | None             | no pending trial is left                                |
| `error`   | str              | the worker stopped on an error (scored trials are safe) |
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from evaluate.campaign import Campaign, RolloutResult, State, TrialExecutor
from evaluate.rollout import TickInfo

log = logging.getLogger(__name__)


class CampaignDriver:
    def __init__(
        self,
        campaign: Campaign,
        make_executor: Callable[[Callable[[TickInfo], None]], TrialExecutor],
        on_event: Callable[[str, Any], None],
    ):
        self.campaign = campaign
        self._make_executor = make_executor
        self._emit = on_event
        self._commands: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._trial_stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"campaign-{campaign.name}", daemon=True)
        campaign.listeners.append(lambda c: self._emit("state", c.state))

    # -- verbs (any thread, non-blocking) ---------------------------------------------

    def start(self) -> CampaignDriver:
        self._thread.start()
        return self

    def go(self) -> None:
        """Real arm: the scene is reset, run the trial."""
        self._commands.put(("go", None))

    def score(self, success: bool, note: str = "") -> None:
        self._commands.put(("score", (success, note)))

    def override(self, slot_key: tuple[str, str, int], success: bool, note: str = "") -> None:
        self._commands.put(("override", (slot_key, success, note)))

    def rerun(self, slot_key: tuple[str, str, int]) -> None:
        self._commands.put(("rerun", slot_key))

    def abort_trial(self) -> None:
        self._trial_stop.set()  # a running rollout checks this every tick
        self._commands.put(("abort", None))

    def estop(self) -> None:
        """The arm was e-stopped: abort the trial in flight (kept as 'aborted', never re-run at once)
        and pause the campaign until `release_estop()` and then `resume()`."""
        self.campaign.estop()
        self._trial_stop.set()
        self._commands.put(("abort", None))

    def release_estop(self) -> None:
        """The arm was released (Resume on the Station); the campaign stays paused until `resume()`."""
        self.campaign.release_estop()
        self._emit("state", self.campaign.state)

    def pause(self) -> None:
        self.campaign.pause()
        self._commands.put(("wake", None))

    def resume(self) -> None:
        """Raises CampaignError while the arm is e-stopped (the message says what to do)."""
        self.campaign.resume()
        self._commands.put(("wake", None))

    def shutdown(self, timeout_s: float = 30.0) -> None:
        self._trial_stop.set()
        self._commands.put(("shutdown", None))
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # -- worker ----------------------------------------------------------------------

    def _main(self) -> None:
        executor = None
        try:
            executor = self._make_executor(lambda tick: self._emit("tick", tick))
            self._loop(executor)
        except _Shutdown:
            pass
        except Exception as exc:
            log.exception("campaign %s stopped", self.campaign.name)
            self._emit("error", "".join(traceback.format_exception_only(type(exc), exc)).strip())
        finally:
            if self.campaign.state not in (State.READY, State.DONE, State.PAUSED):
                self.campaign.abort("the evaluation stopped")
            close = getattr(executor, "close", None)
            if callable(close):
                close()

    def _loop(self, executor: TrialExecutor) -> None:
        while True:
            self._drain()
            if self.campaign.pause_requested:
                self._wait_for(())  # only side commands until resumed
                continue
            self._trial_stop.clear()  # before start_trial: an e-stop from now on reaches this trial
            slot = self.campaign.start_trial()
            if slot is None:
                if self.campaign.state is State.DONE:
                    self._emit("done", None)
                self._wait_for(())
                continue
            self._emit("trial", slot)
            if not self.campaign.spec.auto_scored and self._wait_for(("go", "abort")) == "abort":
                self._abort()
                continue
            if not self._reset(executor, slot):
                self._abort()
                continue
            self.campaign.mark_running()
            result = self._run(executor, slot)
            record = self.campaign.finish_run(result)
            if record is not None:
                self._emit("aborted" if record.outcome == "aborted" else "scored", record)
                continue
            self._emit("await", result)
            if self._wait_for(("score", "abort")) == "abort":
                self._abort()

    def _reset(self, executor: TrialExecutor, slot) -> bool:
        """False when the trial was stopped (e-stop, abort) during the reset."""
        try:
            executor.reset(slot)
        except Exception as exc:
            if not self._stopped_by(exc):
                raise
            log.info("reset of %s stopped (%s); the trial is aborted", slot, exc)
        return not self._trial_stop.is_set()

    def _run(self, executor: TrialExecutor, slot) -> RolloutResult:
        """A rollout that fails because it was stopped (e.g. the e-stopped arm refuses commands) is aborted."""
        started = time.monotonic()
        try:
            return executor.run(slot, self._trial_stop)
        except Exception as exc:
            if not self._stopped_by(exc):
                raise
            log.info("rollout of %s stopped (%s); the trial is aborted", slot, exc)
            return RolloutResult(time.monotonic() - started, aborted=True)

    def _stopped_by(self, exc: Exception) -> bool:
        """True when `exc` comes from a stop: ours, or the arm refusing commands after an e-stop
        that reached it before it reached us (the E-STOP button signals both at once)."""
        from collect.follower import EStopActive  # only on this error path: it imports lerobot

        if isinstance(exc, EStopActive):
            self.estop()
        return self._trial_stop.is_set()

    def _abort(self) -> None:
        record = self.campaign.abort()
        if record is not None:
            self._emit("aborted", record)

    def _drain(self) -> None:
        """Between trials: serve overrides and re-runs posted meanwhile; drop stale clicks."""
        while True:
            try:
                kind, payload = self._commands.get_nowait()
            except queue.Empty:
                return
            self._serve_side(kind, payload)

    def _serve_side(self, kind: str, payload: Any) -> bool:
        """Commands valid at any time; True when `kind` was one of them."""
        if kind == "shutdown":
            raise _Shutdown
        if kind == "override":
            slot_key, success, note = payload
            self._emit("scored", self.campaign.override(slot_key, success, note))
            return True
        if kind == "rerun":
            self.campaign.rerun(payload)
            self._emit("state", self.campaign.state)
            return True
        return False

    def _wait_for(self, wanted: tuple[str, ...]) -> str:
        """Serve commands until one in `wanted` arrives ('score' is committed, then returned).

        With nothing wanted (paused or done), returns after the next re-run or wake-up.
        """
        while True:
            kind, payload = self._commands.get()
            if self._serve_side(kind, payload):
                if not wanted and kind == "rerun":
                    return kind
            elif kind == "score" and "score" in wanted:
                success, note = payload
                self._emit("scored", self.campaign.score(success, note))
                return kind
            elif kind in wanted or (kind == "wake" and not wanted):
                return kind
            # otherwise a stale click (e.g. Success while a trial runs) is ignored


class _Shutdown(Exception):
    pass

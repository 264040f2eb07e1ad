"""The results database: `results.sqlite` in the workspace.

Every scored trial is its own committed transaction (WAL, synchronous=FULL), so killing
the process at any moment loses at most the trial being run, never one already scored.
Rows are never deleted: re-running or overriding a trial marks the earlier row
`superseded` and appends a new one, so the history of every slot stays readable.

The schema is versioned with SQLite's `user_version`; `MIGRATIONS[i]` takes a database
from version i to i+1 and runs inside one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

OUTCOMES = ("success", "failure", "aborted")
SCORED_OUTCOMES = ("success", "failure")
SCORERS = ("operator", "predicate", "override")

MIGRATIONS: tuple[str, ...] = (
    # v0 -> v1
    """
    CREATE TABLE campaigns (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        backend     TEXT NOT NULL,
        spec_json   TEXT NOT NULL,
        status      TEXT NOT NULL DEFAULT 'created',
        created_at  TEXT NOT NULL
    );
    CREATE TABLE campaign_runs (
        campaign_id    INTEGER NOT NULL REFERENCES campaigns(id),
        run            TEXT NOT NULL,
        strategy       TEXT NOT NULL DEFAULT '',
        checkpoint     TEXT NOT NULL DEFAULT '',
        trainable_pct  REAL,
        active_rank    REAL,
        eta            REAL,
        PRIMARY KEY (campaign_id, run)
    );
    CREATE TABLE trials (
        id                 INTEGER PRIMARY KEY,
        campaign_id        INTEGER NOT NULL REFERENCES campaigns(id),
        run                TEXT NOT NULL,
        strategy           TEXT NOT NULL DEFAULT '',
        checkpoint         TEXT NOT NULL DEFAULT '',
        task               TEXT NOT NULL,
        trial_index        INTEGER NOT NULL,
        outcome            TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'aborted')),
        scorer             TEXT NOT NULL CHECK (scorer IN ('operator', 'predicate', 'override')),
        predicate_outcome  TEXT,
        duration_s         REAL,
        seed               INTEGER,
        note               TEXT NOT NULL DEFAULT '',
        episode_ref        TEXT NOT NULL DEFAULT '',
        scored_at          TEXT NOT NULL,
        superseded         INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX trials_slot ON trials (campaign_id, run, task, trial_index);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class ResultsStoreError(RuntimeError):
    """The database cannot be used as it is; the message says what to do."""


@dataclass(frozen=True)
class TrialRecord:
    campaign: str
    run: str
    task: str
    trial_index: int
    outcome: str  # success | failure | aborted
    scorer: str  # operator | predicate | override
    strategy: str = ""
    checkpoint: str = ""
    predicate_outcome: str | None = None  # what the sim predicate said, kept when overridden
    duration_s: float | None = None
    seed: int | None = None
    note: str = ""
    episode_ref: str = ""
    scored_at: str = ""
    superseded: bool = False
    id: int | None = None

    @property
    def slot(self) -> tuple[str, str, int]:
        return (self.run, self.task, self.trial_index)


@dataclass(frozen=True)
class CampaignInfo:
    name: str
    backend: str
    spec: dict
    status: str
    created_at: str


@dataclass(frozen=True)
class RunInfo:
    """What the comparison table shows about a run besides its success rates."""

    campaign: str
    run: str
    strategy: str = ""
    checkpoint: str = ""
    trainable_pct: float | None = None
    active_rank: float | None = None
    eta: float | None = None
    extra: dict = field(default_factory=dict, compare=False)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ResultsStore:
    """Thread-safe handle on one results database (a GUI reads while a worker commits)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.row_factory = sqlite3.Row
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":  # every connection must share WAL: mixed modes break the readers' view
                raise sqlite3.DatabaseError(f"journal mode is {mode!r}, WAL is needed (a local disk)")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise ResultsStoreError(
                f"{self.path} is not a usable results database ({exc}). Move it aside "
                f"(e.g. rename it to {self.path.name}.broken) and a fresh one will be created."
            ) from exc

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        with self._lock:
            version = self.schema_version
            if version > SCHEMA_VERSION:
                raise ResultsStoreError(
                    f"{self.path} has schema v{version}, newer than this piper-ws knows (v{SCHEMA_VERSION}); "
                    "update piper-ws or point --workspace elsewhere"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in MIGRATIONS[target - 1].split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {target}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

    def _write(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, params)

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # -- campaigns -------------------------------------------------------------------

    def create_campaign(self, name: str, backend: str, spec: dict) -> CampaignInfo:
        try:
            self._write(
                "INSERT INTO campaigns (name, backend, spec_json, created_at) VALUES (?, ?, ?, ?)",
                (name, backend, json.dumps(spec, sort_keys=True), _now()),
            )
        except sqlite3.IntegrityError as exc:
            raise ResultsStoreError(
                f"a campaign named {name!r} already exists; resume it or choose another name"
            ) from exc
        return self.campaign(name)

    def campaign(self, name: str) -> CampaignInfo:
        rows = self._read("SELECT * FROM campaigns WHERE name = ?", (name,))
        if not rows:
            known = ", ".join(c.name for c in self.campaigns()) or "none yet"
            raise ResultsStoreError(f"no campaign named {name!r} in {self.path} (known: {known})")
        return self._campaign_from_row(rows[0])

    def has_campaign(self, name: str) -> bool:
        return bool(self._read("SELECT 1 FROM campaigns WHERE name = ?", (name,)))

    def campaigns(self) -> list[CampaignInfo]:
        return [self._campaign_from_row(r) for r in self._read("SELECT * FROM campaigns ORDER BY id")]

    def set_campaign_status(self, name: str, status: str) -> None:
        self._write("UPDATE campaigns SET status = ? WHERE name = ?", (status, name))

    @staticmethod
    def _campaign_from_row(row: sqlite3.Row) -> CampaignInfo:
        return CampaignInfo(
            row["name"], row["backend"], json.loads(row["spec_json"]), row["status"], row["created_at"]
        )

    def _campaign_id(self, name: str) -> int:
        rows = self._read("SELECT id FROM campaigns WHERE name = ?", (name,))
        if not rows:
            raise ResultsStoreError(f"no campaign named {name!r}; create it first")
        return rows[0]["id"]

    # -- runs ------------------------------------------------------------------------

    def register_run(self, info: RunInfo) -> None:
        cid = self._campaign_id(info.campaign)
        self._write(
            "INSERT OR REPLACE INTO campaign_runs "
            "(campaign_id, run, strategy, checkpoint, trainable_pct, active_rank, eta) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (cid, info.run, info.strategy, info.checkpoint, info.trainable_pct, info.active_rank, info.eta),
        )

    def runs(self, campaign: str | None = None) -> list[RunInfo]:
        sql = (
            "SELECT c.name AS campaign, r.run, r.strategy, r.checkpoint, r.trainable_pct, r.active_rank, r.eta "
            "FROM campaign_runs r JOIN campaigns c ON c.id = r.campaign_id"
        )
        params: tuple = ()
        if campaign is not None:
            sql += " WHERE c.name = ?"
            params = (campaign,)
        rows = self._read(sql + " ORDER BY c.id, r.rowid", params)
        return [RunInfo(**{k: r[k] for k in r.keys()}) for r in rows]

    # -- trials ----------------------------------------------------------------------

    def add_trial(self, record: TrialRecord) -> TrialRecord:
        """Commit one trial. A scored outcome supersedes the slot's earlier scored row."""
        if record.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {record.outcome!r}")
        if record.scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {SCORERS}, got {record.scorer!r}")
        cid = self._campaign_id(record.campaign)
        scored_at = record.scored_at or _now()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if record.outcome in SCORED_OUTCOMES:
                    self._supersede(cid, record.run, record.task, record.trial_index)
                cursor = self._db.execute(
                    "INSERT INTO trials (campaign_id, run, strategy, checkpoint, task, trial_index, outcome, scorer, "
                    "predicate_outcome, duration_s, seed, note, episode_ref, scored_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        cid,
                        record.run,
                        record.strategy,
                        record.checkpoint,
                        record.task,
                        record.trial_index,
                        record.outcome,
                        record.scorer,
                        record.predicate_outcome,
                        record.duration_s,
                        record.seed,
                        record.note,
                        record.episode_ref,
                        scored_at,
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        values = asdict(record) | {"id": cursor.lastrowid, "scored_at": scored_at, "superseded": False}
        return TrialRecord(**values)

    def reopen_trial(self, campaign: str, run: str, task: str, trial_index: int) -> int:
        """Re-run a trial: its scored row stays in the history but no longer counts."""
        cid = self._campaign_id(campaign)
        with self._lock:
            return self._supersede(cid, run, task, trial_index)

    def _supersede(self, cid: int, run: str, task: str, trial_index: int) -> int:
        cursor = self._db.execute(
            "UPDATE trials SET superseded = 1 WHERE campaign_id = ? AND run = ? AND task = ? AND trial_index = ? "
            "AND superseded = 0 AND outcome IN ('success', 'failure')",
            (cid, run, task, trial_index),
        )
        return cursor.rowcount

    def counts(self, campaign: str) -> dict[str, int]:
        """Live scored trials and aborted trials on record, as every view reports them."""
        rows = self._read(
            "SELECT SUM(t.outcome != 'aborted' AND t.superseded = 0), SUM(t.outcome = 'aborted') "
            "FROM trials t JOIN campaigns c ON c.id = t.campaign_id WHERE c.name = ?",
            (campaign,),
        )
        return {"scored": rows[0][0] or 0, "aborted": rows[0][1] or 0}

    def change_stamp(self) -> tuple[int, int]:
        """Changes whenever a trial is added or superseded: lets a view skip re-reading."""
        row = self._read("SELECT COALESCE(MAX(id), 0), COALESCE(SUM(superseded), 0) FROM trials")[0]
        return (row[0], row[1])

    def trials(
        self, campaign: str | None = None, *, include_superseded: bool = False, include_aborted: bool = False
    ) -> list[TrialRecord]:
        where, params = [], []
        if campaign is not None:
            where.append("c.name = ?")
            params.append(campaign)
        if not include_superseded:
            where.append("t.superseded = 0")
        if not include_aborted:
            where.append("t.outcome != 'aborted'")
        sql = "SELECT t.*, c.name AS campaign FROM trials t JOIN campaigns c ON c.id = t.campaign_id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._read(sql + " ORDER BY t.id", tuple(params))
        names = {f.name for f in fields(TrialRecord)}
        return [
            TrialRecord(**({k: r[k] for k in r.keys() if k in names} | {"superseded": bool(r["superseded"])}))
            for r in rows
        ]

import sqlite3

import pytest

from evaluate.store import SCHEMA_VERSION, ResultsStore, ResultsStoreError, RunInfo, TrialRecord


def _trial(idx, outcome="success", **kw):
    return TrialRecord(
        campaign="c1",
        run="r1",
        task="open_pot",
        trial_index=idx,
        outcome=outcome,
        scorer=kw.pop("scorer", "operator"),
        **kw,
    )


def test_wal_and_schema_version(tmp_path):
    with ResultsStore(tmp_path / "results.sqlite") as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_trial_round_trip_and_commit_visible_to_another_connection(tmp_path):
    path = tmp_path / "results.sqlite"
    store = ResultsStore(path)
    store.create_campaign("c1", "sim", {"trials": 2})
    store.register_run(RunInfo("c1", "r1", strategy="lora_sp", trainable_pct=17.1, active_rank=60))
    rec = store.add_trial(
        _trial(
            0,
            seed=7,
            duration_s=3.5,
            note="clean",
            episode_ref="eval_c1/ep0",
            strategy="lora_sp",
            checkpoint="last",
        )
    )
    assert rec.id is not None and rec.scored_at
    # A second, independent connection sees it at once: the commit happened.
    other = sqlite3.connect(path)
    row = other.execute(
        "SELECT run, task, trial_index, outcome, scorer, seed, note, episode_ref FROM trials"
    ).fetchone()
    assert row == ("r1", "open_pot", 0, "success", "operator", 7, "clean", "eval_c1/ep0")
    other.close()
    (back,) = store.trials("c1")
    assert back.duration_s == 3.5 and back.strategy == "lora_sp" and back.checkpoint == "last"
    assert store.runs("c1")[0].active_rank == 60


def test_rescore_supersedes_but_keeps_history(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.create_campaign("c1", "sim", {})
    store.add_trial(_trial(0, "failure", scorer="predicate", predicate_outcome="failure"))
    store.add_trial(_trial(0, "success", scorer="override", predicate_outcome="failure"))
    store.add_trial(_trial(1, "aborted"))
    live = store.trials("c1")
    assert [(t.trial_index, t.outcome, t.scorer) for t in live] == [(0, "success", "override")]
    history = store.trials("c1", include_superseded=True, include_aborted=True)
    assert len(history) == 3 and history[0].superseded
    assert store.reopen_trial("c1", "r1", "open_pot", 0) == 1
    assert store.trials("c1") == []


def test_bad_values_and_duplicate_campaign(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.create_campaign("c1", "sim", {})
    with pytest.raises(ResultsStoreError, match="already exists"):
        store.create_campaign("c1", "sim", {})
    with pytest.raises(ValueError, match="outcome"):
        store.add_trial(_trial(0, "maybe"))
    with pytest.raises(ResultsStoreError, match="no campaign named 'nope'"):
        store.add_trial(TrialRecord("nope", "r", "t", 0, "success", "operator"))


def test_corrupt_file_gives_clear_error(tmp_path):
    path = tmp_path / "results.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(ResultsStoreError, match="Move it aside"):
        ResultsStore(path)
    assert path.read_bytes().startswith(b"this is not")  # nothing overwritten


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ResultsStoreError, match="newer"):
        ResultsStore(path)


def test_reopen_keeps_data_and_does_not_remigrate(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as store:
        store.create_campaign("c1", "sim", {"a": 1})
        store.add_trial(_trial(0))
    with ResultsStore(path) as store:
        assert store.campaign("c1").spec == {"a": 1}
        assert len(store.trials()) == 1


def test_a_commit_in_one_process_is_seen_at_once_by_gui_and_cli_readers_in_others(tmp_path):
    """Writer, GUI-like reader (one long-lived connection) and CLI-like readers (a fresh process
    each time) in separate processes: each commit is visible at once, the WAL files stay."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    peer = Path(__file__).with_name("_store_peer.py")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    path = tmp_path / "results.sqlite"
    with ResultsStore(path) as setup:
        setup.create_campaign("c1", "sim", {})
    gui = ResultsStore(path)  # the window: open for the whole session
    writer = subprocess.Popen(
        [sys.executable, str(peer), str(path), "write", "3"],
        env=env,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        for n in (1, 2, 3):
            writer.stdin.write("\n")
            writer.stdin.flush()
            assert writer.stdout.readline().strip() == f"COMMITTED {n}"
            assert len(gui.trials()) == n  # the GUI-like reader, no reopen
            cli = subprocess.run(
                [sys.executable, str(peer), str(path), "count"],
                env=env,
                text=True,
                capture_output=True,
                check=True,
            )
            assert cli.stdout.split() == [str(n), "wal"]  # the CLI-like reader, then it closes
            assert (
                path.with_name("results.sqlite-wal").exists()
                and path.with_name("results.sqlite-shm").exists()
            )
            assert len(gui.trials()) == n and gui.change_stamp()[0] == n  # still readable after the CLI left
    finally:
        writer.stdin.write("\n")
        writer.stdin.close()
        writer.wait(30)
    assert len(gui.trials()) == 3
    gui.close()

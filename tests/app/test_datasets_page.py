"""Datasets page, offscreen: list, per-task counts, replay an episode, delete one safely."""

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def record_three_episodes(datasets_dir):
    from collect.recording.plan import RecordingPlan
    from collect.recording.writer import EpisodeRecord, EpisodeWriter

    plan = RecordingPlan("shelf", tasks=["open_pot", "press_button"], image_size=(96, 128))
    writer = EpisodeWriter.open(plan, datasets_dir)
    for n, task in enumerate(["open_pot", "press_button", "open_pot"]):
        for i in range(10 + 5 * n):
            state = np.full(7, n + 0.01 * i, np.float32)
            images = {cam: np.full((96, 128, 3), 60 * n + i, np.uint8) for cam in plan.cameras}
            writer.add_frame(state, state + 0.2, images, plan.instruction(task))
        writer.keep(
            EpisodeRecord(task=task, instruction=plan.instruction(task), success=n != 1, note=f"take {n}")
        )
    writer.close()
    return plan


@pytest.mark.slow
def test_datasets_page_lists_replays_and_deletes_an_episode(qtbot, app_context):
    from app.gui.pages.datasets import DatasetsPage

    plan = record_three_episodes(app_context.workspace.datasets_dir)
    page = DatasetsPage(app_context)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.episode_table.rowCount() == 3, timeout=30_000)
    assert page.dataset_table.item(0, 0).text() == "shelf" and page.dataset_table.item(0, 1).text() == "3"
    assert page.dataset_table.item(0, 2).text() == "open the pot: 2, press the button: 1"
    assert [page.episode_table.item(r, 3).text() for r in range(3)] == ["yes", "no", "yes"]

    page.episode_table.selectRow(1)
    # The first frame shows as soon as the player's thread decodes it ("loading..." until then).
    qtbot.waitUntil(lambda: page.views["wrist"].last_frame is not None, timeout=10_000)
    assert page.replay["episode_index"] == 1 and page.slider.maximum() == 14
    assert abs(int(page.views["wrist"].last_frame.mean()) - 60) <= 3  # episode 1's own first frame
    qtbot.waitUntil(lambda: "state" in page.replay, timeout=30_000)
    assert page.replay["state"].shape == (15, 7) and np.allclose(
        page.replay["action"] - page.replay["state"], 0.2
    )
    page.slider.setValue(14)
    qtbot.waitUntil(lambda: abs(int(page.views["wrist"].last_frame.mean()) - (60 + 14)) <= 3, timeout=10_000)
    page.slider.setValue(0)
    shown = page.views["side"].frames_shown
    page.toggle_play()  # plays to the last frame, then stops by itself
    qtbot.waitUntil(lambda: not page._play_timer.isActive(), timeout=20_000)
    assert page.slider.value() == 14 and page.views["side"].frames_shown > shown + 5
    assert abs(int(page.views["wrist"].last_frame.mean()) - (60 + 14)) <= 3

    page.confirm = lambda text: False  # the operator says Cancel: nothing happens
    page.delete_selected()
    assert not page.busy and page.episode_table.rowCount() == 3

    page.confirm = lambda text: "episode 1" in text
    page.delete_selected()
    qtbot.waitUntil(lambda: not page.busy and page.episode_table.rowCount() == 2, timeout=120_000)
    qtbot.waitUntil(lambda: page.dataset_table.item(0, 1).text() == "2", timeout=10_000)
    assert [page.episode_table.item(r, 5).text() for r in range(2)] == ["take 0", "take 2"]

    from lerobot.datasets import LeRobotDataset

    ds = LeRobotDataset(plan.repo_id, root=plan.root(app_context.workspace.datasets_dir))
    assert ds.num_episodes == 2 and list(ds.meta.episodes["length"]) == [10, 20]
    assert ds[10]["task"] == "open the pot" and np.allclose(ds[10]["observation.state"].numpy(), 2.0)
    page.shutdown()


def test_a_damaged_file_is_named_on_the_datasets_page(qtbot, app_context):
    from app.gui.pages.datasets import DatasetsPage

    record_three_episodes(app_context.workspace.datasets_dir)
    root = app_context.workspace.datasets_dir / "shelf"
    episodes = next((root / "meta" / "episodes").rglob("*.parquet"))
    episodes.write_bytes(b"garbage")
    page = DatasetsPage(app_context)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.dataset_table.rowCount() == 1, timeout=30_000)
    shown = page.dataset_table.item(0, 2).text()
    assert shown.startswith(f"unreadable: {episodes} is damaged (") and "restore it from a backup" in shown
    (root / "meta" / "info.json").write_text('{"fps": 30,')
    page.refresh()
    qtbot.waitUntil(lambda: "info.json is damaged" in page.dataset_table.item(0, 2).text(), timeout=30_000)

"""Recording tests: small images, short episodes, a throwaway datasets dir."""

import pytest

from ._frames import SMALL


@pytest.fixture
def datasets_dir(tmp_path):
    path = tmp_path / "datasets"
    path.mkdir()
    return path


@pytest.fixture
def make_plan():
    from collect.recording.plan import RecordingPlan

    def make(name="demo", **overrides):
        settings = dict(
            tasks=["open_pot", "press_button"],
            episodes_per_task=2,
            image_size=SMALL,
            reset_s=0.0,
            max_episode_s=2.0,
            operator="tester",
        )
        settings.update(overrides)
        return RecordingPlan(name, **settings)

    return make

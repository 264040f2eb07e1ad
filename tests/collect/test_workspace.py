"""workspace.json holds the Station page's hardware and where each study writes; saving
one never drops the other, and a damaged file is refused with the fix."""

import pytest

from collect.workspace import HardwareConfig, Workspace


def test_the_hardware_and_the_studies_share_workspace_json(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    assert ws.studies() == {} and ws.load_hardware() == HardwareConfig()
    ws.save_hardware(HardwareConfig(backend="piper", follower_port="can1"))
    ws.record_study("big", tmp_path / "docs" / "big")
    ws.save_hardware(HardwareConfig(backend="piper", follower_port="can2"))
    ws.record_study("learn", tmp_path / "docs" / "learn")
    again = Workspace.open(tmp_path / "ws")
    assert again.load_hardware().follower_port == "can2"
    assert again.studies() == {"big": tmp_path / "docs" / "big", "learn": tmp_path / "docs" / "learn"}
    ws.record_study("big", tmp_path / "moved")  # the same study name, a new --out: the newest wins
    assert again.studies()["big"] == tmp_path / "moved"

    ws.config_path.write_text('{"hardware": {')
    for read in (ws.load_hardware, ws.studies):
        with pytest.raises(ValueError, match="fix or delete it"):
            read()

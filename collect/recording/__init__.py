"""Recording sessions: plans, the session state machine, the LeRobotDataset writer.

    plan = RecordingPlan(dataset="pots", tasks=["open_pot"], episodes_per_task=120)
    session = RecordingSession(plan, workspace)       # opens the station and the dataset
    session.start(); ...; session.stop(); session.keep()   # or discard()

Nothing here imports torch or lerobot at import time (the GUI imports this package).
"""

from collect.recording.plan import RecordingPlan

__all__ = ["RecordingPlan"]

"""Child process for test_crash.py: keeps two episodes, then records a third until killed.

Prints KEPT <index> after each kept episode and RECORDING once the third episode has frames
in the encoder, so the parent can kill -9 it mid-episode.
"""

import sys
import time

from _frames import SMALL, synthetic_episode  # run as a script: this folder is on sys.path

from collect.recording.plan import RecordingPlan
from collect.recording.writer import EpisodeRecord, EpisodeWriter, staging_path


def main(datasets_dir: str) -> None:
    plan = RecordingPlan("crashy", tasks=["open_pot", "press_button"], image_size=SMALL)
    writer = EpisodeWriter.open(plan, datasets_dir)
    for index, task in enumerate(plan.tasks):
        synthetic_episode(writer, 20 + index, float(index), plan.instruction(task))
        saved = writer.keep(EpisodeRecord(task=task, instruction=plan.instruction(task)))
        print(f"KEPT {saved.episode_index}", flush=True)
    synthetic_episode(writer, 30, 2.0, plan.instruction("open_pot"))
    deadline = time.monotonic() + 10
    while (
        writer.pending_frames or len(list(staging_path(writer.root).glob("tmp*/*_streaming.mp4"))) < 2
    ) and time.monotonic() < deadline:
        time.sleep(0.01)  # frames handed to the encoder threads, their files open
    print("RECORDING", flush=True)
    while True:  # an episode that never ends: the parent kills us here
        synthetic_episode(writer, 1, 2.0, plan.instruction("open_pot"))
        time.sleep(0.03)


if __name__ == "__main__":
    main(sys.argv[1])

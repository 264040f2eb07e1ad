"""Child process for the kill-at-any-instant test: resumes (or creates) the dataset, then
records and keeps short episodes back to back until killed, printing KEPT <index> once each
episode is on disk. Episode i has 6 + i % 4 frames, so the parent can check every length.

`sync`: each keep waits for the disk. `async`: keep_async hands the episode over and the next
episode is recorded at once, while the last one is still being saved (the session's way).
"""

import sys
import time

from _frames import SMALL, episode_length, synthetic_episode  # run as a script: this folder is on sys.path

from collect.recording.plan import RecordingPlan
from collect.recording.writer import EpisodeRecord, EpisodeWriter


def report(saved: EpisodeRecord, index: int) -> None:
    assert saved.episode_index == index, (saved.episode_index, index)
    print(f"KEPT {saved.episode_index}", flush=True)


def main(datasets_dir: str, mode: str) -> None:
    plan = RecordingPlan("anytime", tasks=["open_pot"], image_size=SMALL)
    exists = (plan.root(datasets_dir) / "meta" / "info.json").exists()
    writer = EpisodeWriter.open(plan, datasets_dir, resume=exists)
    print("OPEN", flush=True)
    index = writer.total_episodes if exists else 0
    while True:
        synthetic_episode(writer, episode_length(index), float(index % 5), plan.instruction("open_pot"))
        record = EpisodeRecord(task="open_pot", instruction=plan.instruction("open_pot"))
        if mode == "async":
            writer.keep_async(record).add_done_callback(lambda f, i=index: report(f.result(), i))
            while writer.saving > 1:  # at most one save behind, like an operator's reset
                time.sleep(0.005)
        else:
            report(writer.keep(record), index)
        index += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "sync")

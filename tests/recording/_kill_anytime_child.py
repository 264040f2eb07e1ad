"""Child process for the kill-at-any-instant test: resumes (or creates) the dataset, then
records and keeps short episodes back to back until killed, printing KEPT <index> after
each keep returns. Episode i has 6 + i % 4 frames, so the parent can check every length.
"""

import sys

from _frames import SMALL, episode_length, synthetic_episode  # run as a script: this folder is on sys.path

from collect.recording.plan import RecordingPlan
from collect.recording.writer import EpisodeRecord, EpisodeWriter


def main(datasets_dir: str) -> None:
    plan = RecordingPlan("anytime", tasks=["open_pot"], image_size=SMALL)
    exists = (plan.root(datasets_dir) / "meta" / "info.json").exists()
    writer = EpisodeWriter.open(plan, datasets_dir, resume=exists)
    print("OPEN", flush=True)
    while True:
        index = writer.total_episodes if (writer.root / "meta" / "info.json").exists() else 0
        synthetic_episode(writer, episode_length(index), float(index % 5), plan.instruction("open_pot"))
        saved = writer.keep(EpisodeRecord(task="open_pot", instruction=plan.instruction("open_pot")))
        assert saved.episode_index == index, (saved.episode_index, index)
        print(f"KEPT {saved.episode_index}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

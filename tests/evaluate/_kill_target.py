"""Child process for test_crash.py: runs a campaign and reports each commit on stdout.

Each trial holds for a while mid-rollout (printing RUNNING first) so the parent can kill
it there; after each score it prints SCORED and waits a little (between trials).
"""

import sys
import threading
import time

from evaluate.campaign import Campaign, CampaignSpec, RolloutResult, run_campaign
from evaluate.store import ResultsStore


class SlowExecutor:
    def reset(self, slot):
        pass

    def run(self, slot, stop: threading.Event):
        print(f"RUNNING {slot.task} {slot.trial_index}", flush=True)
        time.sleep(0.3)
        return RolloutResult(0.3, success=slot.trial_index % 3 != 0)


def main(db_path: str) -> None:
    store = ResultsStore(db_path)
    spec = CampaignSpec(name="crash", runs=("r",), tasks=("open_pot", "pick_grape"), trials=50)
    campaign = Campaign.open_or_create(store, spec)

    def scored(record):
        print(f"SCORED {record.task} {record.trial_index} {record.outcome}", flush=True)
        time.sleep(0.2)

    run_campaign(campaign, SlowExecutor(), on_trial=scored)


if __name__ == "__main__":
    main(sys.argv[1])

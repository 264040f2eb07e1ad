"""A second process on results.sqlite for test_store: `write N` commits one trial per line
read from stdin and answers COMMITTED <n>; `count` (a CLI-like reader) prints the live trials."""

import sys

from evaluate.store import ResultsStore, TrialRecord

if __name__ == "__main__":
    path, verb = sys.argv[1], sys.argv[2]
    with ResultsStore(path) as store:
        if verb == "count":
            print(len(store.trials()), store._db.execute("PRAGMA journal_mode").fetchone()[0], flush=True)
        else:
            for n in range(int(sys.argv[3])):
                sys.stdin.readline()
                store.add_trial(TrialRecord("c1", "r1", "open_pot", n, "success", "operator"))
                print(f"COMMITTED {n + 1}", flush=True)
            sys.stdin.readline()  # hold the connection until told to quit

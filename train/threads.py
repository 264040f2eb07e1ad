"""How a process's OpenMP threads wait, set before torch loads (libgomp reads it once).

An OpenMP thread that finishes its share of a parallel region spins before it sleeps,
300,000 iterations by default, waiting for its partners. Beside another busy process (a
training job, a study lane) the kernel's autogroup scheduling gives each session its fair
share of the CPU whatever the nice values, so a partner is often descheduled and the spinner
burns the time the partner needs. Measured on the 2-core CPU, 2 threads beside a one-thread
training job (`benchmarks/bench_contention.py`): mini-smolvla 0.07 steps/s at the default
against 2.41 at 1,000 spins (tiny-smolvla 0.60 against 18.84; 10,000 spins gave it 3.04).
Alone, the bound costs mini-smolvla 0.93x and tiny-smolvla, whose operations are small,
0.77-0.92x over three runs: a stall of two orders of magnitude is worth a few percent.
"""

from __future__ import annotations

from collections.abc import MutableMapping

OMP_SPIN_COUNT = "1000"


def bound_omp_spinning(env: MutableMapping[str, str]) -> None:
    """Bound libgomp's spinning in `env` (os.environ before torch loads, or a child's
    environment); a value already set there is kept."""
    env.setdefault("GOMP_SPINCOUNT", OMP_SPIN_COUNT)

"""How to split an instance's cores between scoring threads and native threads per call."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Parallelism:
    workers: int
    threads_per_worker: int


def plan_parallelism(
    cpus: int, units: int, workers: int | None = None, threads_per_worker: int | None = None
) -> Parallelism:
    """Workers x threads never exceed ``cpus`` (no oversubscription).

    By default one worker per unit of work (a row group) up to the core count; with
    fewer units than cores, each worker's predict call gets the spare cores as
    native threads, so every core stays busy either way.
    """
    if cpus < 1:
        raise ValueError(f"cpus must be at least 1, got {cpus}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if threads_per_worker is not None and threads_per_worker < 1:
        raise ValueError(f"threads_per_worker must be at least 1, got {threads_per_worker}")
    chosen_workers = workers or max(1, min(cpus, units))
    chosen_workers = min(chosen_workers, cpus)
    threads = threads_per_worker or max(1, cpus // chosen_workers)
    threads = max(1, min(threads, cpus // chosen_workers))
    return Parallelism(workers=chosen_workers, threads_per_worker=threads)

"""Waiting for instances: ask the job store until a job's instances are admitted.

The admission rule itself is ``resources.job_store.admission``; this is the loop a
step runs around it, against any store with the ``AdmissionStore`` role.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from resources.job_store.admission import Admission, InstanceQuotaWaitExhausted
from resources.job_store.protocols import AdmissionStore

# how often a waiting step repeats its "waiting for ..." line (and the first time)
WAITING_LOG_SECONDS = 60.0


def wait_for_instances(
    store: AdmissionStore, job_name: str, run_id: str, instance_type: str, count: int,
    quota: int, *, poll_seconds: float, timeout_seconds: float, log: Any,
    log_every_seconds: float = WAITING_LOG_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Admission:
    """Ask until the job's instances are admitted; return the admission.

    Logs the waiting line the first time and then every ``log_every_seconds``.
    Raises ``InstanceQuotaWaitExhausted`` after ``timeout_seconds`` without
    admission. Whenever it stops without admission (timeout, interrupt, error)
    it withdraws its ticket first, so it does not hold up younger requests.
    """
    deadline = time.monotonic() + timeout_seconds
    logged_at: float | None = None
    admission: Admission | None = None
    try:
        while True:
            admission = store.reserve_instances(job_name, run_id, instance_type, count, quota)
            if admission.admitted:
                return admission
            now = time.monotonic()
            if logged_at is None or now - logged_at >= log_every_seconds:
                log.info(f"job {job_name}: {admission.waiting_message()}")
                logged_at = now
            if now + poll_seconds > deadline:
                raise InstanceQuotaWaitExhausted(
                    f"quota wait exhausted: job {job_name} waited {timeout_seconds:.0f}s "
                    f"(quota_wait_seconds) for {count} {instance_type} and they never fit "
                    f"(quota {quota}, in use {admission.in_use}, {admission.ahead} older "
                    "request(s) ahead)")
            sleep(poll_seconds)
    except BaseException:
        if admission is None or not admission.admitted:
            store.release_instances(job_name, "withdrawn: stopped waiting")
        raise

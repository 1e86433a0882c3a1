"""A run worker that reserves instances for its job, then blocks (to be SIGKILLed).

``python admission_holder.py STORE_PATH PARTITION JOB_NAME COUNT QUOTA`` registers
this process as the owner of run ``run-<JOB_NAME>``, records the job's attempt,
asks for COUNT ml.m5.xlarge once, prints ADMITTED or WAITING and sleeps.
"""

from __future__ import annotations

import sys
import time

from resources.job_store import SQLiteJobStore
from resources.liveness import this_process

if __name__ == "__main__":
    store_path, partition, job_name, count, quota = sys.argv[1:6]
    store = SQLiteJobStore(path=store_path)
    run_id = f"run-{job_name}"
    store.register_owner(run_id, this_process())
    store.create_attempt("predictions", partition, lambda _attempt: job_name, run_id, "local")
    admission = store.reserve_instances(job_name, run_id, "ml.m5.xlarge", int(count),
                                        int(quota))
    print("ADMITTED" if admission.admitted else "WAITING", flush=True)
    time.sleep(120)

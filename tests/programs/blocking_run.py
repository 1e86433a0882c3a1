"""A real Dagster run that tests kill: it takes a slot of the processing pool,
records a job attempt the way a scoring step does, prints READY and blocks.

Usage (DAGSTER_HOME set): python blocking_run.py JOB_STORE_PATH ASSET PARTITION JOB_NAME
"""

import sys
import time

import dagster as dg

from batch_assets.jobs.orchestration import PROCESSING_POOL
from resources.job_store import SQLiteJobStore
from resources.liveness import this_process

store_path, asset, partition, job_name = sys.argv[1:5]


@dg.op(pool=PROCESSING_POOL)
def hold_slot_and_record_attempt(context: dg.OpExecutionContext) -> None:
    store = SQLiteJobStore(path=store_path)
    store.register_owner(context.run_id, this_process())
    store.create_attempt(asset, partition, lambda _attempt: job_name, context.run_id, "local")
    print("READY", flush=True)
    time.sleep(600)


@dg.job
def blocking_job() -> None:
    hold_slot_and_record_attempt()


if __name__ == "__main__":
    blocking_job.execute_in_process(instance=dg.DagsterInstance.get())

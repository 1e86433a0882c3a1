"""Orchestration policies shared by the processing-backed assets.

* ``PROCESSING_POOL``: every step that runs a processing job takes one slot of
  this Dagster concurrency pool, so the jobs in flight across all runs (a
  backfill included) never exceed the pool's limit. Set the limit to
  ``instance quota // largest instance_count`` of the registry (see README).
* ``TRANSIENT_RETRY``: a step that fails (an API error, a job whose instances
  died) is retried with exponential backoff; each retry records a new attempt in
  the job store and scores only the files still missing, and the job store's
  attempt cap stops the loop.
* ``PREDICTIONS_BACKFILL``: one partition per run, so each run is one job with
  its own job record, retry and pool slot, and a failure stays in its partition.
"""

import dagster as dg

PROCESSING_POOL = "sagemaker_processing"
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL)
PREDICTIONS_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)

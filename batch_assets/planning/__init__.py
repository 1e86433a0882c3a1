"""What a step works out before and after its processing job: where every key lives
(``layout``), which files are done (``tally``, from ``day_manifests``), whether the
registry still matches the model's version, how many instances, and the job's
request and attempt (``job_requests``, ``job_runner``)."""

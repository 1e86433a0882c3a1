"""A step's processing job from request to verdict: the request (``job_requests``),
its attempt in the job store, adoption of an in-flight one, waiting and stopping
(``job_runner``), whether its owner still lives (``owner_liveness``), which failures a
retry can fix (``failures``), and the steps' pool and retry policies
(``orchestration``)."""

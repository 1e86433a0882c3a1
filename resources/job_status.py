"""SageMaker's ``ProcessingJobStatus`` names, spelled once.

The local runner answers with them, the processing resource waits on them, and the
job store records them, so code that reads a status cannot tell the backends apart.
They are the API's, not the container's: the container never sees a job status.
"""

IN_PROGRESS = "InProgress"
STOPPING = "Stopping"
COMPLETED = "Completed"
FAILED = "Failed"
STOPPED = "Stopped"

TERMINAL = frozenset({COMPLETED, FAILED, STOPPED})

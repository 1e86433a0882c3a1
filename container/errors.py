"""Errors the container reports to the job's FailureReason."""


# Start of the failure message of a JobInputError. The orchestrator does not retry
# such a job: bad data or a bad model does not get better by running again.
BAD_INPUT_PREFIX = "Bad input: "


class JobInputError(Exception):
    """Bad input a user can fix: the message names the file, column or setting and the fix.

    The entrypoint writes ``BAD_INPUT_PREFIX`` + the message to
    ``/opt/ml/output/message`` (SageMaker shows it as the job's FailureReason) and
    exits non-zero.
    """

"""Errors the container reports to the job's FailureReason."""


class JobInputError(Exception):
    """Bad input a user can fix: the message names the file, column or setting and the fix.

    The entrypoint writes ``container.contract.BAD_INPUT_PREFIX`` + the message to
    ``/opt/ml/output/message`` (SageMaker shows it as the job's FailureReason) and
    exits non-zero; the orchestrator does not retry such a job.
    """

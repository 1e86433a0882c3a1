"""Failure classes: what a retry can fix, and what the message tells the user to do."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from batch_assets.jobs.failures import classify_exception, classify_job_failure

JOB_FAILURES = [
    # (FailureReason as the local runner or SageMaker writes it, kind, retryable)
    ("AlgorithmError: Bad input: input file p0.parquet could not be read", "bad input", False),
    ("local runner error: PermissionError: [Errno 1] Operation not permitted: '/b/x'",
     "permission denied", False),
    ("ClientError: Failed to upload to s3://b/p: AccessDenied", "permission denied", False),
    ("ClientError: ImageUri 123.dkr.ecr/x:1 does not exist", "invalid request", False),
    ("AlgorithmError: instance algo-2 exited with code -9 and wrote no /opt/ml/output/message",
     "instance or job lost", True),
    ("local runner supervisor (pid 12) died; see /x/supervisor.log", "instance or job lost",
     True),
    ("InternalServerError: We encountered an internal error. Please try again.",
     "instance or job lost", True),
    ("never submitted: its run r1 ended FAILURE", "instance or job lost", True),
    ("AlgorithmError: something new", "unexpected failure", True),
]


@pytest.mark.parametrize(("reason", "kind", "retryable"), JOB_FAILURES)
def test_job_failures_are_classified(reason, kind, retryable):
    failure = classify_job_failure(reason)
    assert (failure.kind, failure.retryable) == (kind, retryable)
    assert ("not retried" in failure.describe()) == (not retryable)


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "CreateProcessingJob")


@pytest.mark.parametrize(("exc", "kind", "retryable"), [
    (_client_error("ResourceLimitExceeded"), "quota wait exhausted", False),
    (_client_error("AccessDeniedException"), "permission denied", False),
    (_client_error("ThrottlingException"), "throttled or transient service error", True),
    (_client_error("ValidationException"), "invalid request", False),
    (ParamValidationError(report="Invalid length for parameter X"), "invalid request", False),
    (PermissionError(13, "Permission denied"), "permission denied", False),
    (ConnectionResetError(), "throttled or transient service error", True),
])
def test_submission_errors_are_classified(exc, kind, retryable):
    failure = classify_exception(exc)
    assert (failure.kind, failure.retryable) == (kind, retryable)

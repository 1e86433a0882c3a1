"""Which failures a retry can fix, and what the user should do about the others.

Retrying costs instance time and, for a permission error, minutes of back-off
that cannot succeed. So every failure is put in one class, the step's
``RetryPolicy`` and the retry sensor act only on retryable ones, and the
failure message says which class it is and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError, ParamValidationError

from container.contract import BAD_INPUT_PREFIX


@dataclass(frozen=True)
class FailureClass:
    kind: str
    retryable: bool
    advice: str

    def describe(self) -> str:
        """The sentence appended to a failure message."""
        verdict = "retried automatically" if self.retryable else "not retried"
        return f"[{self.kind}: {verdict}] {self.advice}"


BAD_INPUT = FailureClass(
    "bad input", False,
    "Fix the file, column or model the message names (or re-deliver the file), then "
    "materialize the partition again.")
PERMISSION = FailureClass(
    "permission denied", False,
    "Grant the job (locally: this user; on AWS: the execution role) access to the location "
    "the message names, then materialize the partition again.")
CONFIGURATION = FailureClass(
    "invalid request", False,
    "Fix the setting the message names (registry entry or resource configuration), then "
    "materialize the partition again.")
QUOTA_EXHAUSTED = FailureClass(
    "quota wait exhausted", False,
    "The instance quota stayed in use for the whole quota_wait_seconds: raise the service "
    "quota, lower instance_count or the sagemaker_processing pool limit, then rerun.")
MISSING_PREREQUISITE = FailureClass(
    "missing prerequisite", False,
    "Provide what the message names (a trained model, the day's data and its marker), "
    "then materialize the partition again.")
INSTANCE_DIED = FailureClass(
    "instance or job lost", True,
    "Files already scored are kept; the next attempt scores the rest.")
THROTTLED = FailureClass(
    "throttled or transient service error", True,
    "Retried with back-off; nothing to do unless it keeps failing.")
UNKNOWN = FailureClass(
    "unexpected failure", True,
    "Retried up to the attempt cap; if it keeps failing, read the job's log.")

# substrings of a job's FailureReason (SageMaker's or the local runner's)
_PERMISSION_MARKERS = ("PermissionError", "Permission denied", "Operation not permitted",
                       "AccessDenied", "Access Denied", "not authorized")
# an exhausted quota wait, by the job store's admission or by SageMaker's back-off
_QUOTA_MARKERS = ("quota wait exhausted", "ResourceLimitExceeded")
_CONFIGURATION_MARKERS = ("so it can never fit",)  # more instances than the quota
_LOST_MARKERS = ("supervisor", "exited with code -9", "exited with code 137",
                 "InternalServerError", "MaxRuntimeInSeconds", "stopped by request",
                 "never submitted")
_RETRYABLE_API_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded",
    "ProvisionedThroughputExceededException", "ServiceUnavailable", "InternalFailure",
    "InternalServerError", "RequestTimeout", "TransactionConflict",
})
_PERMISSION_API_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
    "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken",
})


def classify_job_failure(reason: str) -> FailureClass:
    """Class of a processing job that ended Failed or Stopped, from its FailureReason."""
    if BAD_INPUT_PREFIX in reason:
        return BAD_INPUT
    if any(marker in reason for marker in _PERMISSION_MARKERS):
        return PERMISSION
    if any(marker in reason for marker in _QUOTA_MARKERS):
        return QUOTA_EXHAUSTED
    if any(marker in reason for marker in _CONFIGURATION_MARKERS):
        return CONFIGURATION
    if any(marker in reason for marker in _LOST_MARKERS):
        return INSTANCE_DIED
    if reason.startswith("ClientError"):
        # SageMaker's prefix for a customer error (bad S3 path, image, role, ...)
        return CONFIGURATION
    return UNKNOWN


def classify_exception(exc: BaseException) -> FailureClass:
    """Class of an error raised while submitting or watching a job."""
    if isinstance(exc, PermissionError):
        return PERMISSION
    if isinstance(exc, ParamValidationError):
        return CONFIGURATION
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceLimitExceeded":
            return QUOTA_EXHAUSTED
        if code in _PERMISSION_API_CODES:
            return PERMISSION
        if code in _RETRYABLE_API_CODES:
            return THROTTLED
        if code.startswith("Validation") or code == "ResourceInUse":
            return CONFIGURATION
        return UNKNOWN
    if isinstance(exc, ConnectionError | TimeoutError):
        return THROTTLED
    return UNKNOWN

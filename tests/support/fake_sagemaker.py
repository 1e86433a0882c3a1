"""A scripted stand-in for the SageMaker service, for what moto cannot do.

moto completes processing jobs the moment they are created and lacks
``stop_processing_job`` in some releases, so status sequences, quota errors and
stops are played by this fake. It stands in for AWS, not for our code: the
resource under test calls it exactly as it calls boto3.
"""

from __future__ import annotations

from botocore.exceptions import ClientError


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class ScriptedSageMaker:
    def __init__(self, statuses: list[str], failure_reason: str = "",
                 quota_errors: int = 0) -> None:
        self.statuses = list(statuses)
        self.failure_reason = failure_reason
        self.quota_errors = quota_errors
        self.created: list[dict] = []
        self.stopped: list[str] = []
        self.describe_calls = 0

    def create_processing_job(self, **request) -> dict:
        if self.quota_errors:
            self.quota_errors -= 1
            raise client_error("ResourceLimitExceeded", "The account-level service limit "
                               "'ml.m5.xlarge for processing job usage' is 4 Instances",
                               "CreateProcessingJob")
        self.created.append(request)
        return {"ProcessingJobArn": f"arn:aws:sagemaker:us-east-1:1:processing-job/"
                                    f"{request['ProcessingJobName']}"}

    def describe_processing_job(self, ProcessingJobName: str) -> dict:
        self.describe_calls += 1
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if self.stopped:
            status = "Stopped"
        described = {"ProcessingJobName": ProcessingJobName, "ProcessingJobStatus": status}
        if status == "Failed":
            described["FailureReason"] = self.failure_reason
        return described

    def stop_processing_job(self, ProcessingJobName: str) -> dict:
        self.stopped.append(ProcessingJobName)
        return {}

"""Processing backends: where and how processing jobs run.

``backend.ProcessingBackend`` is the one interface (and the settings every backend
shares); ``local.LocalProcessing`` (the embedded default) and
``sagemaker.SageMakerProcessing`` implement it, each with only its own settings;
``jobs.ProcessingJobs`` submits, waits for and stops jobs through the client a
backend opened, the same code for both.
"""

from resources.processing.backend import JobSettings, ProcessingBackend
from resources.processing.jobs import ProcessingJobError, ProcessingJobs
from resources.processing.local import LOCAL_BACKEND, LocalProcessing
from resources.processing.sagemaker import SAGEMAKER_BACKEND, SageMakerProcessing

__all__ = [
    "LOCAL_BACKEND",
    "SAGEMAKER_BACKEND",
    "JobSettings",
    "LocalProcessing",
    "ProcessingBackend",
    "ProcessingJobError",
    "ProcessingJobs",
    "SageMakerProcessing",
]

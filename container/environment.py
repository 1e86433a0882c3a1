"""The processing instance the container runs on, with a relocatable ``/opt/ml``.

SageMaker mounts everything under ``/opt/ml``. The local runner cannot use that
path for N instances on one machine, so it sets ``BATCH_OPT_ML_ROOT`` to a private
folder per instance; every ``/opt/ml/...`` path in the job config is mapped under
that root. The variable is read when an entrypoint starts, never at import.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from container.contract import (
    FAILURE_MESSAGE_FILE,
    JOB_CONFIG_FILE,
    MESSAGE_LIMIT_BYTES,
    NUM_CPUS_ENV_VAR,
    OPT_ML,
    RESOURCE_CONFIG_FILE,
    ROOT_ENV_VAR,
    input_path,
    opt_ml_relative,
    output_path,
)
from container.errors import JobInputError


@dataclass(frozen=True)
class Channel:
    """One processing input or output as the container sees it."""

    name: str
    local_path: Path


@dataclass(frozen=True)
class ProcessingEnvironment:
    """Paths and facts of the current processing instance."""

    root: Path

    @classmethod
    def from_environment(cls) -> ProcessingEnvironment:
        return cls(root=Path(os.environ.get(ROOT_ENV_VAR, OPT_ML)))

    def map_path(self, container_path: str) -> Path:
        """Map an absolute ``/opt/ml/...`` path of the job config under this root."""
        return self.root / opt_ml_relative(container_path)

    @property
    def message_path(self) -> Path:
        return self.root / FAILURE_MESSAGE_FILE

    @property
    def scratch_dir(self) -> Path:
        """Folder on the processing volume for temporary files.

        It is outside every output folder, so a ``Continuous`` upload never sees
        a half-written file; it is on the same volume, so a rename is atomic.
        """
        return self.root / "processing" / ".scratch"

    def job_config(self) -> dict:
        return json.loads((self.root / JOB_CONFIG_FILE).read_text())

    def resource_config(self) -> dict:
        return json.loads((self.root / RESOURCE_CONFIG_FILE).read_text())

    def inputs(self) -> dict[str, Channel]:
        config = self.job_config()
        return {
            item["InputName"]: Channel(
                item["InputName"], self.map_path(item["S3Input"]["LocalPath"])
            )
            for item in config.get("ProcessingInputs", [])
        }

    def outputs(self) -> dict[str, Channel]:
        config = self.job_config()
        outputs = config.get("ProcessingOutputConfig", {}).get("Outputs", [])
        return {
            item["OutputName"]: Channel(
                item["OutputName"], self.map_path(item["S3Output"]["LocalPath"])
            )
            for item in outputs
        }

    def channels(
        self, inputs: tuple[str, ...], outputs: tuple[str, ...]
    ) -> tuple[dict[str, Path], dict[str, Path]]:
        """Local paths of the named inputs and outputs; a missing one is a clear error."""
        found_inputs, found_outputs = self.inputs(), self.outputs()
        for kind, names, found in (("input", inputs, found_inputs),
                                   ("output", outputs, found_outputs)):
            missing = [n for n in names if n not in found]
            if missing:
                raise JobInputError(
                    f"the processing job has no {kind} named {missing[0]!r}; it has "
                    f"{sorted(found) or 'none'}"
                )
        return ({n: found_inputs[n].local_path for n in inputs},
                {n: found_outputs[n].local_path for n in outputs})

    def current_host(self) -> str:
        return self.resource_config().get("current_host", "algo-1")

    def write_failure_message(self, message: str) -> None:
        """Write the failure reason where SageMaker reads it (first 1 KB is kept)."""
        self.message_path.parent.mkdir(parents=True, exist_ok=True)
        data = message.encode("utf-8")[:MESSAGE_LIMIT_BYTES]
        self.message_path.write_bytes(data)


def write_standalone_config(
    root: Path, inputs: tuple[str, ...], outputs: tuple[str, ...], host: str = "algo-1"
) -> None:
    """Write the ``config/`` files SageMaker gives a single instance, with each channel
    at ``/opt/ml/processing/{input,output}/<name>``.

    For running the container by hand (tests, benchmarks) without the local runner.
    """
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / JOB_CONFIG_FILE).write_text(json.dumps({
        "ProcessingInputs": [
            {"InputName": name, "S3Input": {"LocalPath": input_path(name)}}
            for name in inputs
        ],
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": name, "S3Output": {"LocalPath": output_path(name)}}
            for name in outputs
        ]},
    }))
    (root / RESOURCE_CONFIG_FILE).write_text(
        json.dumps({"current_host": host, "hosts": [host]}))


def available_cpus() -> int:
    """CPUs this instance may use: explicit override, then cgroup quota, then affinity.

    Oversubscribing cores (processes x native threads > cores) slows scoring down,
    so every parallel decision starts from this number.
    """
    override = os.environ.get(NUM_CPUS_ENV_VAR)
    if override:
        try:
            value = int(override)
        except ValueError as exc:
            raise ValueError(
                f"{NUM_CPUS_ENV_VAR}={override!r} is not a whole number of CPUs"
            ) from exc
        if value < 1:
            raise ValueError(f"{NUM_CPUS_ENV_VAR}={override!r} must be at least 1")
        return value
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus or 1, quota)
    return max(1, cpus or 1)


def _cgroup_cpu_quota() -> int | None:
    """Whole CPUs allowed by a cgroup v2 ``cpu.max`` limit, if one is set."""
    path = Path("/sys/fs/cgroup/cpu.max")
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, int(int(quota) / int(period)))

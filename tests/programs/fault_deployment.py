"""A throw-away deployment for the fault suite: its own bucket, job store, Dagster
instance and Definitions file, run by real ``dagster`` processes that tests kill.

The Definitions file imports ``deployment_resources`` from here, so the runs and
the test (which evaluates the sensors as the daemon would) use the same settings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow as pa

from batch_assets.planning.layout import predictions_prefix
from batch_assets.planning.scoring_groups import group_of
from batch_assets.registry import load_registry
from resources.job_store import JobRecord, SQLiteJobStore
from resources.processing import LocalProcessing
from resources.storage import LocalBucketStorage
from tests.conftest import write_test_registry
from tests.support.helpers import read_outputs

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def deployment_resources(root: Path | str, instance_quota: int | None = None) -> dict:
    root = Path(root)
    return {
        "storage": LocalBucketStorage(root=str(root / ".data" / "bucket")),
        "job_store": SQLiteJobStore(path=str(root / ".data" / "jobs.sqlite3"),
                                    heartbeat_seconds=1.0, lease_seconds=10.0),
        "processing": LocalProcessing(
            work_dir=str(root / ".data" / "processing"), poll_interval_seconds=0.2,
            stop_grace_seconds=2.0, quota_backoff_seconds=1.0,
            instance_quota=instance_quota,
        ),
    }


_DEFS = """\
import dagster as dg

from batch_assets.definitions import build_definitions
from tests.programs.fault_deployment import deployment_resources

defs = build_definitions(
    {registry!r}, deployment_resources({root!r}, {quota!r}),
    retry_policy=dg.RetryPolicy(max_retries=2, delay=1),
)
"""

_INSTANCE = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: {pool_limit}
    granularity: op
run_monitoring:
  enabled: true
  poll_interval_seconds: 5
  free_slots_after_run_end_seconds: 5
"""


@dataclass
class Deployment:
    root: Path
    pool_limit: int = 1
    instance_quota: int | None = None

    def __post_init__(self) -> None:
        self.home = self.root / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text(_INSTANCE.format(pool_limit=self.pool_limit))
        self.registry_path = write_test_registry(self.root / "models.toml")
        self.defs_file = self.root / "defs.py"
        self.defs_file.write_text(_DEFS.format(registry=str(self.registry_path),
                                               root=str(self.root), quota=self.instance_quota))
        self.resources = deployment_resources(self.root, self.instance_quota)
        self.storage: LocalBucketStorage = self.resources["storage"]
        self.job_store: SQLiteJobStore = self.resources["job_store"]
        self.processing: LocalProcessing = self.resources["processing"]
        # create the instance's storage once: processes that start together race on it
        self.instance = dg.DagsterInstance.from_config(str(self.home))
        self._launched = 0

    @classmethod
    def with_trained_models(cls, root: Path, trained_bucket: Path, **settings) -> Deployment:
        shutil.copytree(trained_bucket, root / ".data" / "bucket")
        return cls(root, **settings)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DAGSTER_HOME": str(self.home), "PYTHONPATH": str(REPO),
                "PYTHONWARNINGS": "ignore"}

    def materialize(self, partition: str) -> subprocess.Popen:
        """``dagster asset materialize`` of one model's day (``"<day>|<model>"``: the
        suite's name for predictions/<model>[<day>]), as a person or a script runs it."""
        day, model = partition.split("|")
        self._launched += 1
        log = open(self.root / f"run-{self._launched}.log", "wb")  # noqa: SIM115 (child owns it)
        process = subprocess.Popen(
            [DAGSTER, "asset", "materialize", "-f", str(self.defs_file), "--select",
             f"predictions/{model}", "--partition", day],
            cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log_path = self.root / f"run-{self._launched}.log"  # type: ignore[attr-defined]
        return process

    def finish(self, process: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
        code = process.wait(timeout)
        return code, process.log_path.read_text(errors="replace")  # type: ignore[attr-defined]

    def attempts(self, partition: str) -> list[JobRecord]:
        """The attempts of the scoring step of the model's day (shared by the models of
        its scoring group: the suite's faults each touch one model of a day)."""
        day, model = partition.split("|")
        group = group_of(load_registry(self.registry_path), model)
        return self.job_store.attempts(group.name, day)

    def wait_for_record(self, partition: str, status: str, timeout: float = 120) -> JobRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in self.attempts(partition) if r.status == status]
            if found:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"no {status} attempt of {partition}: {self.attempts(partition)}")

    def outputs(self, partition: str) -> pa.Table:
        day, model = partition.split("|")
        table = read_outputs(self.storage.root_path / predictions_prefix(model, day))
        return table.sort_by(table.column_names[0])

    def output_dir(self, partition: str) -> Path:
        day, model = partition.split("|")
        return self.storage.root_path / predictions_prefix(model, day)

"""Files of one local processing job, shared by the client and the supervisor.

Only the supervisor writes ``status.json`` while it lives; the client writes it
once, to mark the job Failed, when it finds the supervisor dead.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class JobStatus:
    status: str
    creation_time: float
    last_modified_time: float
    supervisor_pid: int | None = None
    start_time: float | None = None
    end_time: float | None = None
    failure_reason: str | None = None
    exit_message: str | None = None
    instances: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class JobPaths:
    root: Path

    @property
    def request(self) -> Path:
        return self.root / "request.json"

    @property
    def storage(self) -> Path:
        return self.root / "storage.json"

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def stop_requested(self) -> Path:
        return self.root / "stop-requested"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    def instance_root(self, host: str) -> Path:
        """The instance's stand-in for ``/opt/ml``."""
        return self.root / "instances" / host / "opt_ml"

    @property
    def logs_dir(self) -> Path:
        """Each instance's stdout and stderr, one ``<host>.log`` file per instance."""
        return self.root / "logs"

    def instance_log(self, host: str) -> Path:
        return self.logs_dir / f"{host}.log"

    def read_status(self) -> JobStatus:
        return JobStatus(**json.loads(self.status.read_text()))

    def write_status(self, status: JobStatus) -> None:
        temp = self.status.with_suffix(f".tmp-{os.getpid()}")
        temp.write_text(json.dumps(asdict(status), indent=2))
        os.replace(temp, self.status)

"""A deployment served by ``dagster dev``, driven as the UI drives it (GraphQL).

The backfill test, the UI test and the scale benchmark all need the same thing: a
fresh Dagster instance with the project's instance settings, ``dagster dev``
(webserver + daemon) on a free port, the UI's own mutations to launch backfills,
and a stop that takes every process ``dagster dev`` started with it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from batch_assets.dev.demo import LOCAL_INSTANCE_CONFIG

WORKSPACE = ("load_from:\n  - python_module:\n      module_name: batch_assets.definitions\n"
             "      working_directory: .\n")
ENDED = ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DagsterDev:
    """``with DagsterDev(root, env) as dev:`` serves ``root`` (its ``.data/`` is the
    embedded default's folder) with a fresh ``root/dagster_home``; ``pool_limit``
    replaces the local instance's processing pool limit."""

    def __init__(self, root: Path, env: dict[str, str], pool_limit: int | None = None,
                 start_timeout: float = 180) -> None:
        self.root = root
        self.home = root / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        config = LOCAL_INSTANCE_CONFIG.read_text()
        if pool_limit is not None:
            config = config.replace("default_limit: 1", f"default_limit: {pool_limit}")
        (self.home / "dagster.yaml").write_text(config)
        (root / "workspace.yaml").write_text(WORKSPACE)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "DAGSTER_HOME": str(self.home),
                    "PYTHONWARNINGS": "ignore"}
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> DagsterDev:
        dagster = str(Path(sys.executable).with_name("dagster"))
        self.process = subprocess.Popen(
            [dagster, "dev", "-w", "workspace.yaml", "-p", str(self.port)], cwd=self.root,
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                if self.graphql("{ version }").get("data"):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.__exit__(None, None, None)
                raise RuntimeError(f"dagster dev did not start within {self.start_timeout} s")
            time.sleep(1)

    def __exit__(self, *exc) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            json.dumps({"query": query, "variables": variables or {}}).encode(),
            {"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def launch_backfill(self, asset_paths: list[list[str]], partitions: list[str]) -> str:
        """The mutation the asset graph's "Materialize" dialog sends; the backfill id."""
        launched = self.graphql("""
            mutation($params: LaunchBackfillParams!) {
              launchPartitionBackfill(backfillParams: $params) {
                __typename ... on LaunchBackfillSuccess { backfillId }
                ... on PythonError { message } } }""",
            {"params": {"assetSelection": [{"path": path} for path in asset_paths],
                        "partitionNames": partitions}})
        outcome = launched["data"]["launchPartitionBackfill"]
        if outcome["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {outcome}")
        return outcome["backfillId"]

    def wait_for_backfill(self, backfill_id: str, timeout: float,
                          poll_seconds: float = 2) -> str:
        """The backfill's status once it ended, or the last one seen at the timeout."""
        status = "?"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.graphql("""query($id: String!) {
                partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
                }""", {"id": backfill_id})["data"]["partitionBackfillOrError"]["status"]
            if status in ENDED:
                break
            time.sleep(poll_seconds)
        return status

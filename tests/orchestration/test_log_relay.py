"""The log relay: the containers' own lines in the step log, bounded, never failing.

Local sources read real files and real local jobs; the CloudWatch source reads a
real moto server. Only time is controlled (a clock the relay is given), so the
15 s bound is checked without waiting for it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
import uuid
from pathlib import Path

import boto3
import dagster as dg
import pytest
from botocore.stub import Stubber

from batch_assets.definitions import resources_for
from resources.log_relay import (
    PROGRESS_INTERVAL_SECONDS,
    TRACEBACK_HEAD_LINES,
    TRACEBACK_TAIL_LINES,
    CloudWatchLogSource,
    LocalLogSource,
    LogRelay,
)
from resources.processing import LocalProcessing, ProcessingJobs, SageMakerProcessing
from resources.storage import LocalBucketStorage
from tests.aws.test_sagemaker_backend import a_request
from tests.conftest import SMALL_DATA
from tests.orchestration.test_local_runner import request as local_request
from tests.orchestration.test_local_runner import wait_for
from tests.support.aws import REGION
from tests.support.helpers import interrupted_after

STAMP = "2026-11-29 02:00:00,123 container.infer"


class CollectedLog:
    """Stands in for Dagster's step log (``context.log``): keeps (level, message)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.entries.append(("info", message))

    def warning(self, message: str) -> None:
        self.entries.append(("warning", message))

    def error(self, message: str) -> None:
        self.entries.append(("error", message))

    def of(self, instance: str, level: str | None = None) -> list[str]:
        prefix = f"[{instance}] "
        return [m[len(prefix):] for lv, m in self.entries
                if m.startswith(prefix) and level in (None, lv)]

    def levels(self, level: str) -> list[str]:
        return [m for lv, m in self.entries if lv == level]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def progress(instance: str, i: int) -> str:
    return f"{STAMP} {instance}: {i}/600 files, {i * 10}/6000 rows, 4000 rows/s"


def summary(instance: str) -> str:
    return (f"{STAMP} {instance}: scored 6000 rows in 60.00 s (100 rows/s) after 2.00 s "
            "of start-up")


def append(path: Path, *lines: str, newline: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write("\n".join(lines) + ("\n" if newline else ""))


def is_summary(message: str) -> bool:
    return re.search(r"\bscored \d+ rows in\b|^no input files in this shard",
                     message) is not None


# --- the relay on real files ------------------------------------------------------------


def test_progress_is_bounded_to_the_latest_line_per_instance_every_interval(tmp_path):
    logs, clock, log = tmp_path / "logs", Clock(), CollectedLog()
    relay = LogRelay(LocalLogSource(logs), log, "job-a1", read_interval=1.0, clock=clock)
    written = 0
    for second in range(61):  # 10 progress lines per second and instance, for 60 s
        for host in ("algo-1", "algo-2"):
            append(logs / f"{host}.log",
                   *(progress(host, written + i) for i in range(1, 11)))
        written += 10
        relay.poll()
        if second % 15 == 0:
            for host in ("algo-1", "algo-2"):  # the line relayed is the latest one
                assert log.of(host)[-1] == f"{written}/600 files, {written * 10}/6000 rows, " \
                                           "4000 rows/s"
        clock.now += 1.0
    for host in ("algo-1", "algo-2"):
        append(logs / f"{host}.log", summary(host))
    relay.drain()

    for host in ("algo-1", "algo-2"):
        relayed = log.of(host)
        progress_lines = [m for m in relayed if not is_summary(m)]
        # 610 lines written per instance over 60 s; relayed at t = 0, 15, 30, 45, 60 only
        assert len(progress_lines) == 5
        assert relayed[-1] == ("scored 6000 rows in 60.00 s (100 rows/s) after 2.00 s of "
                               "start-up")
        assert sum(is_summary(m) for m in relayed) == 1
    assert log.levels("warning") == [] and log.levels("error") == []


def test_failure_lines_and_tracebacks_are_never_throttled_or_dropped(tmp_path):
    logs, clock, log = tmp_path / "logs", Clock(), CollectedLog()
    relay = LogRelay(LocalLogSource(logs), log, "job-a1", read_interval=0.0, clock=clock)
    path = logs / "algo-3.log"
    traceback = ["Traceback (most recent call last):",
                 *(f'  File "container/m{i}.py", line {i}, in f{i}\n    f{i + 1}()'
                   for i in range(60)),
                 "ValueError: row 7 of part-3.parquet has no customer_id"]
    append(path, progress("algo-3", 1), progress("algo-3", 2),
           f"{STAMP} algo-3: ERROR model bundle is missing model.json",
           progress("algo-3", 3),
           "2026-11-29 02:00:00,123 ERROR container part-4.parquet lacks column f07",
           f"{STAMP} algo-3: OSError: [Errno 28] No space left on device",
           "2026-11-29 02:00:00,123 container.scoring model churn_xgb failed on "
           "part-2.parquet: bad dtype; the job's other models go on",
           progress("algo-3", 4))
    relay.poll()
    append(path, progress("algo-3", 5), *traceback)
    relay.poll()  # within the same 15 s: progress waits, failures do not
    errors = log.of("algo-3", "error")
    assert errors[:4] == ["ERROR model bundle is missing model.json",
                          "part-4.parquet lacks column f07",
                          "OSError: [Errno 28] No space left on device",
                          "model churn_xgb failed on part-2.parquet: bad dtype; the job's "
                          "other models go on"]
    (relayed_traceback,) = errors[4:]
    lines = relayed_traceback.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: row 7 of part-3.parquet has no customer_id"
    assert len(lines) == TRACEBACK_HEAD_LINES + 1 + TRACEBACK_TAIL_LINES
    assert any("lines not relayed" in line for line in lines)
    assert log.of("algo-3", "info") == ["4/600 files, 40/6000 rows, 4000 rows/s"]

    relay.drain()  # no summary: the instance's last unsent line is its last words
    assert log.of("algo-3", "info")[-1] == "5/600 files, 50/6000 rows, 4000 rows/s"


def test_an_error_line_without_a_level_is_the_instances_last_words(tmp_path):
    # today's container logs its JobInputError as "<time> container <message>", no level
    logs, log = tmp_path / "logs", CollectedLog()
    relay = LogRelay(LocalLogSource(logs), log, "job-a1", read_interval=0.0)
    append(logs / "algo-1.log", progress("algo-1", 1), progress("algo-1", 2))
    relay.poll()
    append(logs / "algo-1.log",
           "2026-11-29 02:00:00,123 container part-4.parquet lacks column f07")
    relay.poll()  # within 15 s of the last progress line: held back
    relay.drain()
    assert log.of("algo-1") == ["2/600 files, 20/6000 rows, 4000 rows/s",
                                "part-4.parquet lacks column f07"]


def test_a_traceback_split_across_reads_is_relayed_in_full(tmp_path):
    logs, log = tmp_path / "logs", CollectedLog()
    relay = LogRelay(LocalLogSource(logs), log, "job-a1", read_interval=0.0)
    path = logs / "algo-1.log"
    append(path, "Traceback (most recent call last):", '  File "x.py", line 1, in <module>')
    relay.poll()
    append(path, "KeyError: 'f07'", summary("algo-1"))
    relay.poll()
    first, second = log.of("algo-1", "error")
    assert first.startswith("Traceback (most recent call last):")
    assert second == "(traceback, continued)\nKeyError: 'f07'"
    assert is_summary(log.of("algo-1", "info")[-1])


def test_missing_files_are_nothing_yet_and_partial_lines_wait_for_their_end(tmp_path):
    logs, log = tmp_path / "job" / "logs", CollectedLog()
    relay = LogRelay(LocalLogSource(logs), log, "job-a1", read_interval=0.0)
    relay.poll()  # no logs folder yet
    logs.mkdir(parents=True)
    relay.poll()  # no instance file yet
    assert log.entries == []
    append(logs / "algo-1.log", f"{STAMP} algo-1: 1/2 files, 10/20", newline=False)
    relay.poll()
    assert log.entries == []  # the line is still being written
    append(logs / "algo-1.log", " rows, 5 rows/s")
    append(logs / "algo-2.log", f"{STAMP} algo-2: no input files in this shard; nothing to do",
           "half a line at the end", newline=False)
    relay.poll()
    assert log.of("algo-1") == ["1/2 files, 10/20 rows, 5 rows/s"]
    assert log.of("algo-2") == ["no input files in this shard; nothing to do"]
    relay.drain()
    assert log.of("algo-2") == ["no input files in this shard; nothing to do"]  # summarized
    assert log.levels("warning") == []


def test_a_large_backlog_is_read_in_slices_and_the_end_is_never_lost(tmp_path):
    logs, log = tmp_path / "logs", CollectedLog()
    path = logs / "algo-1.log"
    append(path, *(progress("algo-1", i) for i in range(1, 201)))
    source = LocalLogSource(logs, max_read_bytes=1024)
    first = source.read()
    assert 0 < len(first) < 20 and first[0].text == progress("algo-1", 1)
    assert source.read()[0].text == progress("algo-1", len(first) + 1)  # the next slice
    append(path, f"{STAMP} algo-1: ERROR part-9.parquet: not a Parquet file")
    relay = LogRelay(source, log, "job-a1", read_interval=0.0)
    relay.drain()  # the job ended with most of the backlog unread: its tail is read
    assert log.of("algo-1", "error") == ["ERROR part-9.parquet: not a Parquet file"]
    # no summary: the last progress line is the instance's last words
    assert log.of("algo-1", "info") == ["200/600 files, 2000/6000 rows, 4000 rows/s"]


def test_an_unreadable_log_is_one_warning_and_the_relay_stops(tmp_path):
    logs, log = tmp_path / "logs", CollectedLog()
    (logs / "algo-1.log").mkdir(parents=True)  # a folder where a file should be
    relay = LogRelay(LocalLogSource(logs), log, "job-a1", read_interval=0.0)
    for _ in range(3):
        relay.poll()
    relay.drain()
    (warning,) = log.levels("warning")
    assert "job job-a1: cannot read the local runner's instance logs" in warning
    assert "IsADirectoryError" in warning
    assert relay.stopped and len(log.entries) == 1


# --- wait() on real local jobs ----------------------------------------------------------


@pytest.fixture
def local(tmp_path) -> ProcessingJobs:
    storage = LocalBucketStorage(root=str(tmp_path / "bucket"))
    for i in range(4):
        storage.write_bytes(f"data/d/dt=2026-11-01/part-{i}.parquet", b"x")
    storage.write_bytes("models/m/v1/model.json", b"{}")
    return LocalProcessing(work_dir=str(tmp_path / "jobs"), poll_interval_seconds=0.1,
                           log_relay_seconds=0.1, stop_grace_seconds=2.0).jobs(storage)


def test_wait_relays_each_local_instances_progress_and_summary(local):
    log = CollectedLog()
    started = time.monotonic()
    local.submit(local_request("chatty-a1", "chatty", 2))
    described = local.wait("chatty-a1", log)
    elapsed = time.monotonic() - started
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    bound = int(elapsed // PROGRESS_INTERVAL_SECONDS) + 1
    for host in ("algo-1", "algo-2"):
        relayed = log.of(host)
        summaries = [m for m in relayed if is_summary(m)]
        assert summaries == ["scored 200000 rows in 0.50 s (400000 rows/s) after 0.10 s of "
                             "start-up"]
        assert 1 <= len(relayed) - 1 <= bound  # 201 progress lines were written
        assert all(re.fullmatch(r"\d+/200 files, \d+/200000 rows, 4000 rows/s|"
                                r"200 files, 200000 rows, model m version v1", m)
                   for m in relayed if not is_summary(m)), relayed
    messages = [m for _, m in log.entries]
    completed = messages.index("processing job chatty-a1: Completed")
    assert all(messages.index(f"[{h}] {s}") < completed
               for h in ("algo-1", "algo-2") for s in log.of(h) if is_summary(s))
    assert log.levels("warning") == [] and log.levels("error") == []


def test_wait_relays_a_crashed_instances_traceback(local):
    log = CollectedLog()
    local.submit(local_request("crash-a1", "crash", 2))
    described = local.wait("crash-a1", log)
    assert described["ProcessingJobStatus"] == "Failed"
    (traceback,) = log.of("algo-2", "error")
    assert traceback.startswith("Traceback (most recent call last):")
    assert traceback.endswith("ValueError: row 7 of part-3.parquet has no customer_id")
    # the failure stops algo-1 before its summary; for both instances the last progress
    # line is relayed, on a poll or as the instance's last words when the job has ended
    for host in ("algo-1", "algo-2"):
        assert not any(is_summary(m) for m in log.of(host))
        assert log.of(host, "info")[-1] == "200/200 files, 200000/200000 rows, 4000 rows/s"


def test_an_interrupted_wait_with_the_relay_still_stops_the_job(local, tmp_path):
    log = CollectedLog()
    local.submit(local_request("interrupted-a1", "sleep", 2))
    append(local.client.logs_dir("interrupted-a1") / "algo-1.log", progress("algo-1", 1))
    with interrupted_after(1.5):
        local.wait("interrupted-a1", log)
    assert log.entries[-1] == ("warning", "run interrupted: stopping processing job "
                                          "interrupted-a1")
    assert log.of("algo-1") == ["1/600 files, 10/6000 rows, 4000 rows/s"]
    assert wait_for(local.client, "interrupted-a1", {"Stopped", "Completed", "Failed"},
                    timeout=30)["ProcessingJobStatus"] == "Stopped"


def test_the_relay_can_be_switched_off(local, tmp_path):
    quiet = LocalProcessing(work_dir=str(tmp_path / "jobs"), poll_interval_seconds=0.1,
                            relay_container_logs=False)
    log = CollectedLog()
    local.submit(local_request("off-a1", "chatty", 1))
    assert ProcessingJobs(quiet, local.client).wait("off-a1", log)["ProcessingJobStatus"] \
        == "Completed"
    assert [m for _, m in log.entries] == ["processing job off-a1: InProgress",
                                           "processing job off-a1: Completed"]


def test_pipeline_step_log_shows_each_instances_summary(pipeline):
    pipeline.processing = LocalProcessing(
        work_dir=str(pipeline.root / "processing"), poll_interval_seconds=0.1,
        log_relay_seconds=0.1, stop_grace_seconds=2.0)
    day = SMALL_DATA.days[0]
    instance = dg.DagsterInstance.ephemeral()
    started = time.monotonic()
    result = pipeline.score(day, "churn_xgb", instance=instance)
    bound = int((time.monotonic() - started) // PROGRESS_INTERVAL_SECONDS) + 1
    assert result.success
    by_step: dict[str, list[str]] = {}
    for entry in instance.all_logs(result.run_id):
        if entry.user_message.startswith("[algo-"):
            by_step.setdefault(entry.step_key, []).append(entry.user_message)
    hosts_by_step = {step: {m.split("]")[0] + "]" for m in relayed}
                     for step, relayed in by_step.items()}
    assert any({"[algo-1]", "[algo-2]"} <= hosts  # churn_xgb's job has 2 instances
               for hosts in hosts_by_step.values()), by_step
    for step, relayed in by_step.items():  # one processing job per step
        for host in hosts_by_step[step]:
            mine = [m for m in relayed if m.startswith(f"{host} ")]
            assert len([m for m in mine if is_summary(m)]) == 1, relayed
            assert len(mine) <= bound + 1, mine  # start-up or progress lines, the summary


# --- CloudWatch Logs on moto ------------------------------------------------------------


@pytest.fixture
def logs(moto_endpoint):
    client = boto3.client("logs", endpoint_url=moto_endpoint, region_name=REGION)
    with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
        client.create_log_group(logGroupName="/aws/sagemaker/ProcessingJobs")
    return client


def put(logs, stream: str, *messages: str) -> None:
    group = "/aws/sagemaker/ProcessingJobs"
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": now + i, "message": m} for i, m in enumerate(messages)])


def job_name() -> str:
    return f"pred-m-{uuid.uuid4().hex[:8]}-a1"


def test_cloudwatch_source_reads_every_instance_across_pages_and_tokens(logs):
    job = job_name()
    # more streams than one describe_log_streams page (50), one line in each
    for n in range(2, 53):
        put(logs, f"{job}/algo-{n}-1764381600", f"hello from algo-{n}")
    put(logs, f"{job}/algo-1-1764381600", *(f"line {i}" for i in range(10)))
    put(logs, f"{job}/algo-2-1764381600", "multi\nline")
    put(logs, f"{job}0/algo-1-1764381600", "another job's line")  # pred-...-a10
    put(logs, f"{job}/not-an-instance", "not an instance's line")
    source = CloudWatchLogSource(logs, job, instance_count=52, page_size=3)
    lines = source.read()
    assert [line.text for line in lines if line.instance == "algo-1"] == \
        [f"line {i}" for i in range(10)]  # four pages of three, by forward token
    assert [line.text for line in lines if line.instance == "algo-2"] == \
        ["hello from algo-2", "multi", "line"]
    assert {line.instance for line in lines} == {f"algo-{n}" for n in range(1, 53)}
    assert [line.instance for line in lines][-1] == "algo-52"  # in instance order
    assert source.read() == []
    put(logs, f"{job}/algo-1-1764381600", "line 10")
    assert [line.text for line in source.read()] == ["line 10"]


def test_missing_log_group_or_streams_are_not_errors(logs):
    log = CollectedLog()
    missing_group = CloudWatchLogSource(logs, job_name(), 2,
                                        log_group=f"/aws/sagemaker/None-{uuid.uuid4().hex}")
    no_streams = CloudWatchLogSource(logs, job_name(), 2)
    for source in (missing_group, no_streams):
        relay = LogRelay(source, log, "job-a1", read_interval=0.0)
        relay.poll()
        relay.poll()
        relay.drain()
        assert source.read() == []
    assert log.entries == []


def test_wait_relays_cloudwatch_lines_on_moto(moto_endpoint, logs):
    job = job_name()
    put(logs, f"{job}/algo-1-1764381600", *(progress("algo-1", i)
                                             for i in range(1, 300)), summary("algo-1"))
    put(logs, f"{job}/algo-2-1764381601", progress("algo-2", 1), progress("algo-2", 2),
        f"{STAMP} algo-2: ERROR part-3.parquet: column f07 is missing")
    jobs = SageMakerProcessing(region_name=REGION, endpoint_url=moto_endpoint,
                               logs_endpoint_url=moto_endpoint, poll_interval_seconds=0.01,
                               ).jobs(storage=None)
    jobs.submit(a_request(job))
    log = CollectedLog()
    assert jobs.wait(job, log)["ProcessingJobStatus"] == "Completed"
    assert log.of("algo-1") == ["scored 6000 rows in 60.00 s (100 rows/s) after 2.00 s of "
                                "start-up"]
    assert log.of("algo-2", "error") == ["ERROR part-3.parquet: column f07 is missing"]
    assert log.of("algo-2", "info") == ["2/600 files, 20/6000 rows, 4000 rows/s"]
    assert [m for _, m in log.entries][-1] == f"processing job {job}: Completed"


def test_unreachable_logs_endpoint_warns_once_and_the_wait_goes_on(moto_endpoint):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    processing = SageMakerProcessing(region_name=REGION, endpoint_url=moto_endpoint,
                                     logs_endpoint_url=closed, poll_interval_seconds=0.01)
    jobs = processing.jobs(storage=None)
    job = job_name()
    jobs.submit(a_request(job))
    log = CollectedLog()
    assert jobs.wait(job, log)["ProcessingJobStatus"] == "Completed"
    (warning,) = log.levels("warning")
    assert f"job {job}: cannot read CloudWatch Logs group /aws/sagemaker/ProcessingJobs" \
        in warning
    assert "logs:GetLogEvents" in warning

    relay = LogRelay(processing.log_source(jobs.client, job), log, job, read_interval=0.0)
    for _ in range(3):
        relay.poll()
    assert relay.stopped and len(log.levels("warning")) == 2  # one more: this relay's


def test_throttling_is_one_warning_then_reads_back_off_and_resume():
    # moto never throttles: botocore's Stubber plays CloudWatch Logs' answers
    client = boto3.client("logs", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="x")
    stubber = Stubber(client)
    streams = {"logStreams": [{"logStreamName": "j-a1/algo-1-1764381600"}]}
    for _ in range(2):
        stubber.add_client_error("describe_log_streams", "ThrottlingException",
                                 "Rate exceeded", 400)
    stubber.add_response("describe_log_streams", streams)
    stubber.add_response("get_log_events", {"events": [{"timestamp": 1, "message":
                                                        summary("algo-1")}],
                                            "nextForwardToken": "f/1"})
    stubber.add_response("get_log_events", {"events": [], "nextForwardToken": "f/1"})
    clock, log = Clock(), CollectedLog()
    relay = LogRelay(CloudWatchLogSource(client, "j-a1", 1), log, "j-a1",
                     read_interval=5.0, clock=clock)
    with stubber:
        relay.poll()  # throttled: backs off to 10 s
        clock.now += 5.0
        relay.poll()  # not yet: no call
        clock.now += 5.0
        relay.poll()  # throttled again: 20 s
        clock.now += 20.0
        relay.poll()
        stubber.assert_no_pending_responses()
    (warning,) = log.levels("warning")
    assert "was throttled" in warning and "reading less often" in warning
    assert log.of("algo-1") == ["scored 6000 rows in 60.00 s (100 rows/s) after 2.00 s of "
                                "start-up"]
    assert not relay.stopped


def test_aws_mode_reads_the_logs_endpoint_from_its_setting():
    environment = {"BATCH_INFERENCE_MODE": "aws", "BATCH_BUCKET": "b",
                   "BATCH_JOB_TABLE": "t", "BATCH_ROLE_ARN": "arn:aws:iam::1:role/r",
                   "AWS_REGION": REGION}
    assert resources_for(environment)["processing"].logs_endpoint_url is None
    configured = resources_for({**environment, "BATCH_LOGS_ENDPOINT_URL": "http://logs:1"})
    assert configured["processing"].logs_endpoint_url == dg.EnvVar("BATCH_LOGS_ENDPOINT_URL")

"""Relay the processing containers' own log lines into the Dagster step log.

Without it the run log shows only status changes ("InProgress", "Completed"),
while the container says how far each instance has got. ``LogRelay`` reads the
instances' new output lines from a ``LogSource`` and writes a bounded selection
to the step log, prefixed with the instance (``[algo-1] 3/8 files, ...``):

* progress: the latest line of each instance, at most one per instance every
  ``PROGRESS_INTERVAL_SECONDS``. The container throttles itself to the same
  interval; the relay enforces it too, so a chatty container cannot flood the
  run log. Lines in between are superseded, not queued.
* each instance's final summary ("scored N rows in ...", or "no input files"),
  as soon as it is read, never throttled.
* failure lines (level ``ERROR``, or words: ``ERROR``, ``SomeError:``, ``error:``,
  ``failed``) and tracebacks,
  never throttled or dropped; a traceback longer than ``TRACEBACK_HEAD_LINES +
  TRACEBACK_TAIL_LINES`` keeps its head and its tail (where the exception is).
* when the job has ended, ``drain`` reads what remains once and also writes the
  last unsent line of each instance that wrote no summary (a failed or stopped
  instance's last words).

Sources: ``LocalLogSource`` follows the local runner's ``logs/algo-N.log`` files
by byte offset; ``CloudWatchLogSource`` follows the SageMaker streams
``<job-name>/algo-N-<epoch>`` of ``/aws/sagemaker/ProcessingJobs`` by forward
token. dagster-aws has CloudWatch readers, but they belong to a Pipes session
(one known stream, forwarded raw to stdout, retrying throttling with sleeps in a
thread that never sees the end of the stream), so boto3 is used directly.

Polling, not a thread: ``ProcessingJobs.wait`` calls ``poll`` between two
``describe_processing_job`` calls and ``drain`` once the status is terminal. A
read happens at most every ``read_interval`` seconds (CloudWatch Logs read APIs
have small per-account request quotas shared by every running job). There is no
thread to stop on interruption or timeout, no second thread writing to Dagster's
log, and the last lines are read after the terminal status, in order. The cost,
a slow CloudWatch call delaying the next describe, is bounded by the logs
client's short timeouts and two attempts.

Not Dagster Pipes: Pipes would give structured metadata, but the container would
have to import ``dagster-pipes`` and open a session from parameters the launching
run injects; that couples the container to Dagster, needs a message channel on
AWS (S3 or CloudWatch, with its own reader thread), and ties the session to the
run that launched the job, while a job here may be adopted by another run
(``job_runner``). The numbers that matter already come back structured in the
per-file output manifests the assets read; progress needs only plain lines.

The relay never fails or stalls the step: a missing file, log group or stream
means "nothing yet"; throttling is logged once as a warning and reads back off;
any other error (AccessDenied, no endpoint, an unreadable file) is logged once as
a warning naming the source and the fix, and the relay stops for this wait.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

PROGRESS_INTERVAL_SECONDS = 15.0
TRACEBACK_HEAD_LINES = 8
TRACEBACK_TAIL_LINES = 24
MAX_BACKOFF_SECONDS = 300.0
LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
THROTTLING_CODES = frozenset({
    "ThrottlingException", "Throttling", "TooManyRequestsException",
    "RequestLimitExceeded", "ServiceUnavailableException",
})

# "2026-11-29 02:00:00,123 container.infer algo-1: 3/8 files, ..." (container/__main__.py),
# with or without a level name before the logger's
_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?\s+"
    r"(?:(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+)?\S+\s(?P<message>.*)$")
_FAILURE_LEVELS = frozenset({"ERROR", "CRITICAL"})
_SUMMARY = re.compile(r"\bscored \d+ rows in\b|\bno input files in this shard\b")
# today's container format has no level name: an error is known by its words
_FAILURE = re.compile(
    r"\b(?:ERROR|CRITICAL|FATAL)\b|\b\w*(?:Error|Exception):|\berror:|^Killed\b"
    r"|\b[Ff]ailed\b")
_TRACEBACK = "Traceback (most recent call last):"
_INSTANCE_STREAM = re.compile(r"^(?P<instance>algo-\d+)(?:-\d+)?$")


@dataclass(frozen=True)
class LogLine:
    """One line of one instance's container output, without its newline."""

    instance: str
    text: str


class LogSource(Protocol):
    """Where the instances' container output of one job can be read."""

    def describe(self) -> str:
        """Where the lines come from, for warnings."""
        ...

    def read(self, final: bool = False) -> list[LogLine]:
        """Lines written since the last read, in order per instance. ``final``: the
        job has ended, so an unterminated last line is complete."""
        ...


class SourceThrottled(Exception):
    """The log API refused a read for its rate quota: read again later."""


def _instance_order(instance: str) -> tuple[str, int]:
    head, _, number = instance.rpartition("-")
    return (head, int(number)) if number.isdigit() else (instance, 0)


class LocalLogSource:
    """The local runner's ``<job dir>/logs/algo-N.log`` files, followed by byte offset.

    A poll reads at most ``max_read_bytes`` per file (the rest waits for the next
    poll); the final read jumps over anything beyond that to the file's tail, since
    the end of the output is where a failure is told.
    """

    def __init__(self, logs_dir: Path, max_read_bytes: int = 4 << 20) -> None:
        self.logs_dir = Path(logs_dir)
        self.max_read_bytes = max_read_bytes
        self._offsets: dict[str, int] = {}

    def describe(self) -> str:
        return f"the local runner's instance logs in {self.logs_dir}"

    def read(self, final: bool = False) -> list[LogLine]:
        if not self.logs_dir.is_dir():
            return []  # the instances have not started yet
        lines: list[LogLine] = []
        for path in sorted(self.logs_dir.glob("*.log"), key=lambda p: _instance_order(p.stem)):
            lines.extend(self._read_file(path, path.stem, final))
        return lines

    def _read_file(self, path: Path, instance: str, final: bool) -> list[LogLine]:
        offset = self._offsets.get(instance, 0)
        skipped = 0
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size < offset:
                    offset = 0  # replaced by a new file: start over
                if final and size - offset > self.max_read_bytes:
                    skipped = size - self.max_read_bytes - offset
                    offset = size - self.max_read_bytes
                handle.seek(offset)
                data = handle.read(self.max_read_bytes)
        except FileNotFoundError:
            return []
        if not final:
            end = data.rfind(b"\n") + 1
            if end or len(data) < self.max_read_bytes:
                data = data[:end]  # an unterminated last line is still being written
        self._offsets[instance] = offset + len(data)
        texts = data.decode("utf-8", "replace").splitlines()
        if skipped:
            texts = [f"({skipped} bytes of output not relayed; see {path})", *texts[1:]]
        return [LogLine(instance, text) for text in texts]


class CloudWatchLogSource:
    """SageMaker's CloudWatch Logs streams of one job: ``<job>/algo-N-<epoch>``.

    Streams are looked up with ``describe_log_streams`` until all
    ``instance_count`` instances have one (an instance's stream appears when its
    container starts); each stream is read forward from its head with
    ``get_log_events`` and ``nextForwardToken``, at most ``max_pages`` pages per
    stream and read. The same token coming back means the end of the stream so far.
    """

    def __init__(self, client: Any, job_name: str, instance_count: int | None = None,
                 log_group: str = LOG_GROUP, page_size: int | None = None,
                 max_pages: int = 20) -> None:
        self.client = client
        self.job_name = job_name
        self.instance_count = instance_count
        self.log_group = log_group
        self.page_size = page_size
        self.max_pages = max_pages
        self._streams: dict[str, str] = {}  # stream name -> instance
        self._tokens: dict[str, str] = {}

    def describe(self) -> str:
        return (f"CloudWatch Logs group {self.log_group}, streams {self.job_name}/* "
                f"(region {self.client.meta.region_name})")

    def read(self, final: bool = False) -> list[LogLine]:
        if self.instance_count is None or len(self._streams) < self.instance_count:
            self._discover()
        lines: list[LogLine] = []
        for stream, instance in sorted(self._streams.items(),
                                       key=lambda item: _instance_order(item[1])):
            lines.extend(self._read_stream(stream, instance))
        return lines

    def _call(self, method: Callable[..., dict], **kwargs: Any) -> dict | None:
        """The API's answer; None if the group or stream does not exist (yet)."""
        try:
            return method(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                return None
            if code in THROTTLING_CODES:
                raise SourceThrottled(f"{code}: {exc}") from exc
            raise

    def _discover(self) -> None:
        request: dict[str, Any] = {"logGroupName": self.log_group,
                                   "logStreamNamePrefix": f"{self.job_name}/"}
        while True:
            page = self._call(self.client.describe_log_streams, **request)
            if page is None:
                return  # no log group yet: no instance has logged in this region
            for stream in page.get("logStreams", []):
                name = stream["logStreamName"]
                found = _INSTANCE_STREAM.match(name[len(self.job_name) + 1:])
                if found:
                    self._streams.setdefault(name, found["instance"])
            token = page.get("nextToken")
            if not token or token == request.get("nextToken"):
                return
            request["nextToken"] = token

    def _read_stream(self, stream: str, instance: str) -> list[LogLine]:
        lines: list[LogLine] = []
        for _ in range(self.max_pages):
            request: dict[str, Any] = {"logGroupName": self.log_group,
                                       "logStreamName": stream, "startFromHead": True}
            token = self._tokens.get(stream)
            if token:
                request["nextToken"] = token
            if self.page_size:
                request["limit"] = self.page_size
            page = self._call(self.client.get_log_events, **request)
            if page is None:
                break
            for event in page.get("events", []):
                lines.extend(LogLine(instance, text)
                             for text in event.get("message", "").splitlines())
            next_token = page.get("nextForwardToken")
            if not next_token or next_token == token:
                break  # the end of the stream, for now
            self._tokens[stream] = next_token
        return lines


@dataclass
class _Instance:
    pending: str | None = None  # latest progress line not yet relayed
    progress_at: float | None = None  # when a progress line was last relayed
    summarized: bool = False
    in_traceback: bool = False
    traceback: list[str] = field(default_factory=list)
    traceback_continues: bool = False  # part of this traceback was relayed already


class LogRelay:
    """Writes a bounded selection of a job's container lines to ``log`` (module doc)."""

    def __init__(self, source: LogSource, log: Any, job_name: str, *,
                 read_interval: float = 5.0,
                 progress_interval: float = PROGRESS_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.log = log
        self.job_name = job_name
        self.read_interval = read_interval
        self.progress_interval = progress_interval
        self.clock = clock
        self._instances: dict[str, _Instance] = {}
        self._next_read = float("-inf")
        self._backoff = read_interval
        self._warned = False
        self.stopped = False

    def poll(self) -> None:
        """Read new lines if ``read_interval`` has passed; relay what is due."""
        if self.stopped or self.clock() < self._next_read:
            return
        if self._read(final=False):
            self._relay_due_progress()

    def drain(self) -> None:
        """The job has ended: read what remains once, relay every instance's last
        words, and stop."""
        if self.stopped:
            return
        if self._read(final=True):
            for instance, state in self._sorted_instances():
                self._flush_traceback(instance, state)
                if state.pending is not None and not state.summarized:
                    self._send(self.log.info, instance, state.pending)
                    state.pending = None
        self.stopped = True

    # --- reading --------------------------------------------------------------------

    def _read(self, final: bool) -> bool:
        """Read and sort the new lines; False if the source could not be read."""
        try:
            self._ingest(self.source.read(final=final))
        except SourceThrottled as exc:
            self._warn_once(f"reading {self.source.describe()} was throttled ({exc}); "
                            "reading less often")
            self._backoff = min(max(self._backoff, 1.0) * 2, MAX_BACKOFF_SECONDS)
            self._next_read = self.clock() + self._backoff
            return False
        except Exception as exc:  # the relay must never fail the step: warn, then stop
            self._warn_once(
                f"cannot read {self.source.describe()} ({type(exc).__name__}: {exc}); the "
                "run log shows no more container lines for this job (the job itself is "
                "unaffected). On AWS, allow logs:DescribeLogStreams and logs:GetLogEvents "
                f"on {LOG_GROUP} to the Dagster role, or set relay_container_logs=false.")
            self.stopped = True
            return False
        self._backoff = self.read_interval
        self._next_read = self.clock() + self.read_interval
        return True

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            self.log.warning(f"job {self.job_name}: {message}")

    def _ingest(self, lines: list[LogLine]) -> None:
        for line in lines:
            state = self._instances.setdefault(line.instance, _Instance())
            text = line.text.rstrip()
            record = _RECORD.match(text)
            if state.in_traceback:
                if record is None:
                    state.traceback.append(text)
                    continue
                self._flush_traceback(line.instance, state)  # a new record ends it
                state.in_traceback = False
                state.traceback_continues = False
            if text.startswith(_TRACEBACK):
                state.in_traceback = True
                state.traceback.append(text)
                continue
            if not text:
                continue
            message = record["message"] if record else text
            message = message.removeprefix(f"{line.instance}: ")
            if _SUMMARY.search(message):
                self._send(self.log.info, line.instance, message)
                state.summarized = True
                state.pending = None
            elif (record and record["level"] in _FAILURE_LEVELS) or _FAILURE.search(message):
                self._send(self.log.error, line.instance, message)
            else:
                state.pending = message
        for instance, state in self._sorted_instances():
            self._flush_traceback(instance, state)  # relay what has arrived, now

    # --- relaying -------------------------------------------------------------------

    def _sorted_instances(self) -> list[tuple[str, _Instance]]:
        return sorted(self._instances.items(), key=lambda item: _instance_order(item[0]))

    def _relay_due_progress(self) -> None:
        now = self.clock()
        for instance, state in self._sorted_instances():
            if state.pending is None:
                continue
            if state.progress_at is None or now - state.progress_at >= self.progress_interval:
                self._send(self.log.info, instance, state.pending)
                state.pending = None
                state.progress_at = now

    def _flush_traceback(self, instance: str, state: _Instance) -> None:
        lines = state.traceback
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            return
        if len(lines) > TRACEBACK_HEAD_LINES + TRACEBACK_TAIL_LINES:
            omitted = len(lines) - TRACEBACK_HEAD_LINES - TRACEBACK_TAIL_LINES
            lines = [*lines[:TRACEBACK_HEAD_LINES], f"... ({omitted} lines not relayed)",
                     *lines[-TRACEBACK_TAIL_LINES:]]
        if state.traceback_continues:
            lines = ["(traceback, continued)", *lines]
        self._send(self.log.error, instance, "\n".join(lines))
        state.traceback = []
        state.traceback_continues = state.in_traceback

    def _send(self, emit: Callable[[str], Any], instance: str, message: str) -> None:
        emit(f"[{instance}] {message}")

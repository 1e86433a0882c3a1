"""What users see: one partition materialized by clicking in a real browser.

`dagster dev` serves a fresh instance on a fresh folder (small demo data, churn_xgb
trained by the pipeline on that instance, so the UI knows its upstream). Headless
Chromium (Debian's package, driven by Playwright) then does what a user does:

1. opens the asset page of predictions/churn_xgb and clicks "Materialize...";
2. in the launch dialog types the partition 2026-11-01 and clicks "Launch 1 run";
3. follows the "Launched run" toast to the run page and waits for "Success";
4. filters the run log on "algo-": the containers' relayed lines are there, one
   "[algo-N] scored R rows in ..." summary per instance, adding up to the day's rows;
5. opens the asset's Partitions tab, hides missing partitions, clicks the day and
   reads its metadata: rows, input files, the processing job's name (from the job
   store), instances; and the prediction_distribution table when the materialization
   has that entry (``assert_distribution_table_shown``; only that assertion is
   skipped, with a warning, when the entry is absent).

Screenshots of each step go to tests/ui_results/ (or $UI_RESULTS_DIR): the asset
page, the launch dialog, the run log, the partition's metadata and, when shown, the
distribution table; their paths and the time of each phase are printed (pytest -s).

Chromium is started headless with a fresh profile and without background networking
(the machine has no network but the package registries): see CHROMIUM_FLAGS.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psutil
import pytest

from batch_assets.dev.demo import LOCAL_INSTANCE_CONFIG
from batch_assets.dev.demo_data import DemoDataSpec, generate_demo_data
from resources.job_store import SQLiteJobStore
from tests.conftest import make_pipeline, write_test_registry

pytestmark = pytest.mark.slow

MODEL = "churn_xgb"
ASSET_PATH = ("predictions", MODEL)
STEP = "score_customers"  # the scoring step (and job store key) of churn_xgb's dataset
DAY = "2026-11-01"
DATA = DemoDataSpec(days=(DAY,), files_per_day=5, rows_per_file=2_000, training_rows=6_000)
ROWS = DATA.files_per_day * DATA.rows_per_file
INSTANCES = 2  # instance_count of the churn models in the test registry

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (`make browser` installs it)
# headless, no sandbox (root in CI), and nothing that phones home: without the
# background-networking flags Chromium floods the closed network with connections
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
RESULTS = Path(os.environ.get("UI_RESULTS_DIR") or Path(__file__).parents[1] / "ui_results")

# generous: two shared cores, often loaded by other work
SERVER_START_SECONDS = 300
UI_TIMEOUT_MS = 120_000
RUN_SECONDS = 900


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class DagsterUI:
    base: str  # http://127.0.0.1:<port>
    root: Path  # the folder dagster dev runs in (.data/ below it)
    log: Path  # dagster dev's output

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.base}/graphql",
            json.dumps({"query": query, "variables": variables or {}}).encode(),
            {"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert not answer.get("errors"), answer["errors"]
        return answer["data"]

    def location_loaded(self) -> bool:
        entries = self.graphql("""{ workspaceOrError { ... on Workspace { locationEntries {
            locationOrLoadError { __typename } } } } }""")["workspaceOrError"]["locationEntries"]
        kinds = [e["locationOrLoadError"] and e["locationOrLoadError"]["__typename"]
                 for e in entries]
        assert "PythonError" not in kinds, f"the code location failed to load; see {self.log}"
        return bool(kinds) and all(kind == "RepositoryLocation" for kind in kinds)

    def run_status(self, run_id: str) -> str:
        return self.graphql("query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                            {"id": run_id})["runOrError"]["status"]

    def run_errors(self, run_id: str) -> list[str]:
        events = self.graphql("""query($id: ID!) { logsForRun(runId: $id) {
            ... on EventConnection { events { __typename ... on MessageEvent { message level } } }
            } }""", {"id": run_id})["logsForRun"]["events"]
        return [e["message"] for e in events if e.get("level") in ("ERROR", "CRITICAL")]

    def metadata_labels(self, day: str) -> list[str]:
        """The metadata keys of the asset's latest materialization of ``day``."""
        asset = self.graphql("""query($path: [String!]!, $day: String!) {
            assetOrError(assetKey: {path: $path}) { ... on Asset {
              assetMaterializations(partitions: [$day], limit: 1) {
                metadataEntries { label } } } } }""",
            {"path": list(ASSET_PATH), "day": day})["assetOrError"]
        (materialization,) = asset["assetMaterializations"]
        return [entry["label"] for entry in materialization["metadataEntries"]]


class Timer:
    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.phases: list[tuple[str, float]] = []

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.phases.append((phase, now - self.last))
        self.last = now
        print(f"[ui test] {phase}: {self.phases[-1][1]:.1f} s", flush=True)

    def report(self) -> str:
        return ", ".join(f"{p} {s:.0f} s" for p, s in self.phases) + \
            f"; total {time.monotonic() - self.start:.0f} s"


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium; installed here when missing (as `make browser` does), or a
    clear failure saying how to install it."""
    if not CHROMIUM.exists():
        command = "apt-get update && apt-get install -y chromium chromium-driver"
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium as root "
                        f"(`make browser`, or `{command}`)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
            done = subprocess.run(step, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pytest.fail(f"{' '.join(step)} failed ({done.returncode}): "
                            f"{(done.stdout + done.stderr)[-2000:]}")
    return str(CHROMIUM)


@pytest.fixture
def timer() -> Timer:
    return Timer()


@pytest.fixture
def dagster_ui(tmp_path: Path, timer: Timer) -> Iterator[DagsterUI]:
    """`dagster dev` on a fresh instance and a fresh .data/ with one day of small demo
    data and churn_xgb trained on that instance; stopped (its process group) after."""
    data = tmp_path / ".data"
    registry = write_test_registry(tmp_path / "models.toml", instance_count=INSTANCES,
                                   multiclass=False)
    pipeline = make_pipeline(data, registry, bucket=data / "bucket")
    generate_demo_data(pipeline.storage, DATA)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(LOCAL_INSTANCE_CONFIG.read_text())
    # trained on the instance dagster dev serves, as `make demo` does: the UI then
    # knows trained_model[churn_xgb] is materialized (else its launch asks "Are you sure?")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        pipeline.run_job("train_models", MODEL, instance=instance)
    timer.lap("data and training")

    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: batch_assets.definitions\n"
        "      working_directory: .\n")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "BATCH_MODEL_REGISTRY": str(registry),
           "PYTHONWARNINGS": "ignore"}
    dagster = str(Path(sys.executable).with_name("dagster"))
    log = tmp_path / "dagster_dev.log"
    # through `make dev`'s launcher: dagster dev in its own process group, stopped (the
    # whole group, SIGKILL after a grace) on SIGTERM even where SIGINT is ignored
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "batch_assets.dev.dev_server", "--", dagster, "dev",
             "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    ui = DagsterUI(f"http://127.0.0.1:{port}", tmp_path, log)
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            assert server.poll() is None, f"dagster dev exited; see {log}"
            try:
                if ui.location_loaded():
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"dagster dev did not start; see {log}"
            time.sleep(2)
        timer.lap("dagster dev start")
        yield ui
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to the launcher, which stops dagster dev's process group; SIGKILL to
    every group involved if that takes more than a minute."""
    groups = {server.pid}
    with contextlib.suppress(psutil.Error, OSError):
        groups |= {os.getpgid(child.pid) for child in psutil.Process(server.pid).children()}
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        server.wait(30)


@pytest.fixture
def page(chromium: str):
    """A Playwright page in headless Debian Chromium with a fresh profile."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # never fetch a browser
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: install the dev extra (pip install -e '.[dev]')")
    profile = tempfile.mkdtemp(prefix="ui-test-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": 1600, "height": 1000})
            try:
                page = context.new_page()
                page.set_default_timeout(UI_TIMEOUT_MS)
                page.set_default_navigation_timeout(UI_TIMEOUT_MS)
                # Dagster's "Join the Dagster community" modal can open over any page:
                # dismiss it whenever it is in the way
                page.add_locator_handler(
                    page.get_by_text("Join the Dagster community"),
                    lambda _: page.get_by_role("button", name="Skip").click())
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def screenshots() -> Iterator[list[Path]]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for old in RESULTS.glob("*.png"):
        old.unlink()
    taken: list[Path] = []
    yield taken
    for path in taken:
        print(f"[ui test] screenshot {path}", flush=True)


def _shot(page, screenshots: list[Path], name: str, target=None) -> None:
    """A screenshot of the page (or of the ``target`` element) into RESULTS."""
    path = RESULTS / f"{len(screenshots) + 1:02d}_{name}.png"
    (target or page).screenshot(path=str(path))
    screenshots.append(path)


# --- what the pages show ----------------------------------------------------------


def metadata_row(page, key: str):
    """The row of a metadata table whose first cell is ``key``."""
    return page.get_by_role("row").filter(
        has=page.get_by_role("cell", name=key, exact=True)).first


def metadata_value(page, key: str) -> str:
    row = metadata_row(page, key)
    row.wait_for()
    return row.get_by_role("cell").nth(1).inner_text().strip()


def _number(text: str) -> int:
    """An integer as the UI shows it (``10000`` or ``10,000``, units after it)."""
    match = re.match(r"^\s*([\d,]+)", text)
    assert match, f"not a number: {text!r}"
    return int(match[1].replace(",", ""))


def assert_distribution_table_shown(page, ui: DagsterUI, screenshots: list[Path]) -> None:
    """The partition's ``prediction_distribution`` entry is shown as a table (the
    markdown's histogram). Skipped, with a warning, only while materializations do not
    have that entry yet; an entry the UI does not show fails."""
    key = "prediction_distribution"
    if key not in ui.metadata_labels(DAY):
        message = (f"{key} is not in the materialization's metadata yet: the "
                   "'distribution table is shown' assertion is skipped")
        warnings.warn(message, stacklevel=2)
        print(f"[ui test] {message}", flush=True)
        return
    row = metadata_row(page, key)
    row.scroll_into_view_if_needed()
    table = row.get_by_role("table").first
    if not table.is_visible():  # markdown shown behind a button in some views
        row.get_by_role("button", name=re.compile("Show", re.I)).first.click()
        table = page.get_by_role("dialog").get_by_role("table").first
    table.wait_for()
    assert table.get_by_role("row").count() >= 2, table.inner_text()  # header + a bin
    _shot(page, screenshots, "prediction_distribution", target=row)


# --- the test ---------------------------------------------------------------------


@pytest.mark.timeout(1800)
def test_materialize_one_partition_by_clicking(dagster_ui, page, screenshots, timer):
    try:
        _click_through(dagster_ui, page, screenshots, timer)
    except Exception:
        _shot(page, screenshots, "at_failure")  # what the page showed when it failed
        print(f"[ui test] dagster dev's output: {dagster_ui.log}", flush=True)
        raise


def _click_through(ui: DagsterUI, page, screenshots: list[Path], timer: Timer) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    asset_url = f"{ui.base}/assets/{'/'.join(ASSET_PATH)}"

    # 1. the asset page
    page.goto(asset_url)
    materialize = page.get_by_role("button", name=re.compile(r"Materialize…$"))
    expect(materialize).to_be_enabled()
    expect(page.get_by_text("Never materialized")).to_be_visible()
    _shot(page, screenshots, "asset_page")
    materialize.click()

    # 2. the launch dialog: type the partition, launch one run
    # Dagster may open its newsletter dialog (an e-mail textbox) over a fresh instance
    # at any moment: the launch dialog and its partition box are picked by their text
    dialog = page.get_by_role("dialog").filter(
        has_text=re.compile("Launch runs to materialize|Are you sure"))
    heading = dialog.get_by_text("Launch runs to materialize")
    heading.or_(dialog.get_by_text("Are you sure?")).wait_for()
    assert heading.is_visible(), f"no launch dialog but: {dialog.inner_text()}"
    partitions = dialog.locator("input[type=text]:not([placeholder*='@'])")
    partitions.click()
    partitions.fill(DAY)
    partitions.press("Enter")
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    launch = dialog.get_by_role("button", name=re.compile(r"Launch 1 run$"))
    expect(launch).to_be_enabled()
    _shot(page, screenshots, "launch_dialog")
    launch.click()
    timer.lap("asset page and launch dialog")

    # 3. the run page, from the "Launched run" toast (if the toast closed before the
    #    click, the newest run of this fresh instance is ours)
    try:
        page.get_by_role("link", name=re.compile(r"^View$")).click(timeout=30_000)
    except PlaywrightTimeout:
        (run,) = ui.graphql("{ runsOrError(limit: 1) { ... on Runs { results { runId } } } }")[
            "runsOrError"]["results"]
        page.goto(f"{ui.base}/runs/{run['runId']}")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    run_id = re.search(r"/runs/([0-9a-f-]{36})", page.url)[1]
    expect(page.get_by_text(f"partition: {DAY}")).to_be_visible()
    deadline = time.monotonic() + RUN_SECONDS
    while (status := ui.run_status(run_id)) not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.monotonic() < deadline, f"run {run_id} still {status} after {RUN_SECONDS} s"
        time.sleep(3)
    assert status == "SUCCESS", (status, ui.run_errors(run_id))
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    timer.lap("run")

    # 4. the run log: the containers' relayed lines (the log list is virtualized: the
    #    filter keeps the relayed lines on screen)
    log_filter = page.get_by_placeholder("Filter…")
    log_filter.fill("algo-")
    summary = re.compile(r"^\[(algo-\d+)\] scored (\d+) rows in [\d.]+ s\b.*after [\d.]+ s")
    summaries = page.get_by_text(summary)
    expect(summaries).to_have_count(INSTANCES)
    _shot(page, screenshots, "run_log")
    scored = {summary.match(text)[1]: int(summary.match(text)[2])
              for text in summaries.all_inner_texts()}
    assert sorted(scored) == [f"algo-{i}" for i in range(1, INSTANCES + 1)], scored
    assert sum(scored.values()) == ROWS, scored
    relayed = page.get_by_text(re.compile(r"^\[algo-\d+\] ")).all_inner_texts()
    progress = [t for t in relayed if re.search(r"\d+/\d+ files, \d+/\d+ rows", t)]
    # a progress line is relayed only if a read (every log_relay_seconds) falls in a
    # job's scoring, which lasts well under a second on this data: counted, not required
    print(f"[ui test] relayed container lines: {len(relayed)} ({len(progress)} progress)",
          flush=True)

    # 5. the partition's metadata, from the asset's Partitions tab
    page.goto(asset_url)
    page.get_by_role("tab", name="Partitions").click()
    page.get_by_text(re.compile(r"^Missing \(\d+\)$")).click()  # show the done ones only
    page.get_by_title(DAY, exact=True).click()
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    (job,) = SQLiteJobStore(path=str(ui.root / ".data" / "jobs.sqlite3")).attempts(STEP, DAY)
    assert metadata_value(page, "job_name") == job.job_name
    assert _number(metadata_value(page, "rows")) == ROWS
    assert _number(metadata_value(page, "input_files")) == DATA.files_per_day
    assert _number(metadata_value(page, "instances")) == INSTANCES
    expect(page.get_by_role("link", name=run_id[:8])).to_be_visible()
    # the metadata panel scrolls inside the page: a tall window shows all of it
    page.set_viewport_size({"width": 1600, "height": 3000})
    _shot(page, screenshots, "partition_metadata")
    assert_distribution_table_shown(page, ui, screenshots)
    timer.lap("run log and partition metadata")
    print(f"[ui test] time: {timer.report()}", flush=True)

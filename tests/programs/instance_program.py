"""A stand-in container program for local runner tests (not the pipeline's container).

Usage: python instance_program.py MODE. It reads the same /opt/ml contract files
the real container reads and writes what it saw, so tests can assert what each
instance received.
"""

import json
import os
import sys
import time
from pathlib import Path

root = Path(os.environ["BATCH_OPT_ML_ROOT"])
mode = sys.argv[1]
host = json.loads((root / "config/resourceconfig.json").read_text())["current_host"]
config = json.loads((root / "config/processingjobconfig.json").read_text())
out_dir = root / "processing/output/out"
out_dir.mkdir(parents=True, exist_ok=True)
seen = {}
for item in config["ProcessingInputs"]:
    local = root / item["S3Input"]["LocalPath"][len("/opt/ml/"):]
    seen[item["InputName"]] = sorted(
        p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()
    )
report = {"host": host, "seen": seen, "pid": os.getpid(),
          "cpus": os.environ.get("BATCH_NUM_CPUS")}
(out_dir / f"{host}.json").write_text(json.dumps(report))

if mode == "fail" and host == "algo-2":
    time.sleep(0.5)
    (root / "output").mkdir(exist_ok=True)
    (root / "output/message").write_text(f"{host}: input file part-9.parquet is corrupt")
    sys.exit(3)
if mode == "sleep":
    (out_dir / f"{host}.pid").write_text(str(os.getpid()))
    time.sleep(600)
if mode in ("chatty", "crash"):
    # the container's log format (container/__main__.py) and its progress and summary
    # wording (container/scoring.py Progress, container/infer.py)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        stream=sys.stdout)
    log = logging.getLogger("container.infer")
    log.info("%s: 200 files, 200000 rows, model m version v1", host)
    for i in range(1, 201):
        log.info("%s: %d/200 files, %d/200000 rows, 4000 rows/s", host, i, i * 1000)
    if mode == "crash" and host == "algo-2":
        def score(row: int) -> None:
            raise ValueError(f"row {row} of part-3.parquet has no customer_id")

        score(7)
    time.sleep(2.0)  # the relay reads the progress lines before the summary
    log.info("%s: scored 200000 rows in 0.50 s (400000 rows/s) after 0.10 s of start-up",
             host)

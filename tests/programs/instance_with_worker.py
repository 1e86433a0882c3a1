"""A stand-in container program whose instance starts a worker process, as the real
container's scoring workers do (local runner tests only).

The worker shares the instance's process group but, unlike the instance, is not killed by
the kernel when the supervisor dies (PR_SET_PDEATHSIG covers direct children only). Both
pids are written to ``<output>/<host>.pids`` as "instance worker"; then both sleep.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

root = Path(os.environ["BATCH_OPT_ML_ROOT"])
host = json.loads((root / "config/resourceconfig.json").read_text())["current_host"]
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
out_dir = root / "processing/output/out"
out_dir.mkdir(parents=True, exist_ok=True)
(out_dir / f"{host}.pids").write_text(f"{os.getpid()} {worker.pid}")
time.sleep(600)

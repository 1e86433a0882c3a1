"""Baseline 3, a peer engine: Ray Data ``read_parquet -> map_batches -> write_parquet``.

Task-based ``map_batches`` (an actor pool of one actor per CPU starves the read
tasks on a 2-CPU machine), the same model loaded once per worker process, each
predict call on one native thread so Ray's one task per CPU does not oversubscribe.
Ray's start-up (``ray.init``) is timed separately and left out of its score, in
its favour. Installed from the ``bench`` extra only.

Run as ``python -m benchmarks.ray_data DATA_DIR MODEL_DIR OUT_DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from container.contract import METADATA_FILE

_MODEL = None


class _Scorer:
    """Per-worker model cache: Ray pickles this callable into each task."""

    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir

    def __call__(self, batch):
        global _MODEL
        import numpy as np
        import pyarrow as pa

        from benchmarks.models import load_framework_model

        if _MODEL is None:
            model, metadata = load_framework_model(Path(self.model_dir))
            if metadata["framework"] == "xgboost":
                model.set_params(n_jobs=1)
            _MODEL = model, metadata
        model, metadata = _MODEL
        frame = batch.select(metadata["features"]).to_pandas()
        prediction = np.asarray(model.predict_proba(frame)[:, 1], dtype=np.float64)
        keys = [batch.column(k) for k in metadata["key_columns"]]
        return pa.Table.from_arrays([*keys, pa.array(prediction)],
                                    names=[*metadata["key_columns"], "prediction"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    import ray

    init_started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    started = time.perf_counter()
    metadata = json.loads((args.model_dir / METADATA_FILE).read_text())
    columns = list(dict.fromkeys([*metadata["key_columns"], *metadata["features"]]))
    dataset = ray.data.read_parquet(str(args.data_dir), columns=columns)
    scored = dataset.map_batches(_Scorer(str(args.model_dir)), batch_format="pyarrow",
                                 batch_size=65_536)
    scored.write_parquet(str(args.out_dir))
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "startup_seconds": started - init_started}))
    ray.shutdown()


if __name__ == "__main__":
    main()

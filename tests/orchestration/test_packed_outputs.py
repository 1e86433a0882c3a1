"""The orchestration's side of packed outputs (``container.pack_output``): a pack is
done for all of its files or for none, what a re-score replaces is removed first, and
rows are never counted, or kept, twice.

The outputs are the container's own: a real ``infer`` over tiny files, copied into a
local bucket as the continuous upload would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from batch_assets.planning.layout import data_prefix, predictions_prefix
from batch_assets.planning.tally import list_inputs, remove_stale, tally_partition
from benchmarks.engines import lay_out_instance
from benchmarks.workloads import feature_block, feature_table, prepare, workload_specs
from container.__main__ import main
from container.contract import NUM_CPUS_ENV_VAR, ROOT_ENV_VAR
from resources.storage import LocalBucketStorage

DAY = "2026-11-01"
MODEL = "tiny"
FILES = 60
ROWS_PER_FILE = 10


@pytest.fixture(scope="module")
def linear_model(tmp_path_factory) -> Path:
    (spec,) = [s for s in workload_specs("tiny") if s.name == "W2"]
    return prepare(spec, tmp_path_factory.mktemp("workloads")).model_dir


def write_file(folder: Path, index: int, rows: int = ROWS_PER_FILE, seed: int = 3) -> None:
    block = feature_block(np.random.default_rng(seed + index), rows)
    ids = np.arange(index * 1_000, index * 1_000 + rows, dtype=np.int64)
    pq.write_table(feature_table(ids, block), folder / f"part-{index:04d}.parquet")


@pytest.fixture()
def day(tmp_path, monkeypatch, linear_model):
    """A bucket with a day of ``FILES`` tiny files, scored by two instances' worth of
    ``infer`` runs (two halves of the files: two packs)."""
    storage = LocalBucketStorage(root=str(tmp_path / "bucket"))
    data = storage.root_path / data_prefix("ds", DAY)
    data.mkdir(parents=True)
    for index in range(FILES):
        write_file(data, index)
    (data / "_SUCCESS").write_bytes(b"")
    version = json.loads((linear_model / "model.json").read_text())["version"]

    def score(files: list[str], name: str) -> None:
        shard = tmp_path / f"shard-{name}"
        shard.mkdir()
        for relative in files:
            (shard / relative).symlink_to(data / relative)
        root = tmp_path / f"run-{name}" / "opt_ml"
        output = lay_out_instance(root, shard, linear_model)
        monkeypatch.setenv(ROOT_ENV_VAR, str(root))
        monkeypatch.setenv(NUM_CPUS_ENV_VAR, "1")
        assert main(["infer"]) == 0
        shutil.copytree(output, storage.root_path / predictions_prefix(MODEL, DAY),
                        dirs_exist_ok=True)

    names = [f"part-{i:04d}.parquet" for i in range(FILES)]
    score(names[:FILES // 2], "a")
    score(names[FILES // 2:], "b")
    return storage, version, score


def tally(storage, version):
    return tally_partition(storage, MODEL, DAY, list_inputs(storage, "ds", DAY), version)


def prefix_path(storage) -> Path:
    return storage.root_path / predictions_prefix(MODEL, DAY)


def test_a_day_of_tiny_files_is_two_packs_counted_once(day):
    storage, version, _score = day
    result = tally(storage, version)
    assert result.complete and len(result.done) == FILES
    assert sorted(o.output_key.rsplit("/", 1)[1] for o in result.outputs) == [
        "part-0000.packed-30.parquet", "part-0030.packed-30.parquet"]
    assert result.rows_in == result.rows_out == FILES * ROWS_PER_FILE  # not 30x
    assert len(result.manifests_covering({"part-0001.parquet", "part-0002.parquet"})) == 1
    assert result.stale == []


def test_a_re_delivered_small_file_re_scores_its_whole_pack_and_only_it(day):
    storage, version, score = day
    data = storage.root_path / data_prefix("ds", DAY)
    write_file(data, 7, rows=ROWS_PER_FILE + 1, seed=99)  # new rows, new size
    result = tally(storage, version)
    pending = [i.relative for i in result.pending]
    assert pending == [f"part-{i:04d}.parquet" for i in range(30)]
    assert result.problems["part-0007.parquet"] == (
        "packed with part-0007.parquet: input file changed since it was scored")
    assert result.problems["part-0000.parquet"] == result.problems["part-0007.parquet"]
    stale = {k.rsplit("/", 1)[1] for k in result.stale}
    assert stale == {"part-0000.packed-30.json", "part-0000.packed-30.parquet"}
    assert remove_stale(storage, result) == 2

    score(pending, "again")  # the rerun: the same files, one pack again
    result = tally(storage, version)
    assert result.complete and result.stale == []
    ids = [i for o in result.outputs
           for i in pq.read_table(storage.root_path / o.output_key)["id"].to_pylist()]
    assert len(ids) == len(set(ids)) == FILES * ROWS_PER_FILE + 1


def test_a_damaged_pack_makes_all_its_files_damaged(day):
    storage, version, _score = day
    output = prefix_path(storage) / "part-0030.packed-30.parquet"
    output.write_bytes(output.read_bytes()[:-100])
    result = tally(storage, version)
    assert sorted(result.damaged) == [f"part-{i:04d}.parquet" for i in range(30, 60)]
    assert "output damaged" in result.damaged["part-0045.parquet"]
    assert len(result.done) == 30
    assert prefix_path(storage).joinpath("part-0030.packed-30.parquet").as_posix() in {
        (storage.root_path / k).as_posix() for k in result.stale}


def test_rows_in_two_outputs_count_for_neither_and_both_are_removed(day):
    """A single output for a file a pack also holds (as a crash between a rerun's
    publish and the removal could leave): neither counts, both go before the rerun."""
    storage, version, score = day
    score(["part-0003.parquet"], "single")
    result = tally(storage, version)
    assert "part-0003.parquet" not in result.done
    assert result.problems["part-0003.parquet"].startswith(
        "rows of part-0003.parquet in two outputs")
    assert [i.relative for i in result.pending] == [f"part-{i:04d}.parquet" for i in range(30)]
    assert {k.rsplit("/", 1)[1] for k in result.stale} == {
        "part-0000.packed-30.json", "part-0000.packed-30.parquet",
        "part-0003.json", "part-0003.parquet"}


def test_an_output_without_a_manifest_is_removed_before_a_rerun(day):
    """An instance killed between publishing an output and its manifest leaves an
    output no manifest claims; a rerun may pack its file differently, so it goes."""
    storage, version, _score = day
    orphan = prefix_path(storage) / "part-0000.packed-7.parquet"
    shutil.copy(prefix_path(storage) / "part-0000.packed-30.parquet", orphan)
    result = tally(storage, version)
    assert result.complete
    assert [k.rsplit("/", 1)[1] for k in result.stale] == ["part-0000.packed-7.parquet"]
    remove_stale(storage, result)
    assert not orphan.exists()


def test_a_manifest_naming_another_object_is_refused(day):
    storage, version, _score = day
    path = prefix_path(storage) / "_manifests/part-0000.packed-30.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(manifest | {"output": "../../elsewhere.parquet"}))
    result = tally(storage, version)
    assert result.problems["part-0000.parquet"] == "no manifest"
    assert len(result.done) == 30
    assert "part-0000.packed-30.parquet" in {k.rsplit("/", 1)[1] for k in result.stale}


def test_a_day_of_tiny_files_through_dagster_packs_rescores_and_reads_back(pipeline):
    """The demo day re-delivered as 200 files of 50 rows, scored by both churn models
    in one job: two packs per model (one per instance), the day's figures count every
    row once, and the checks pass. A re-delivered file re-scores its pack's files only,
    the old pack is gone, every id is in exactly one output, and the new-data sensor
    sees the day as scored."""
    from batch_assets.automation.sensors import scored_already
    from tests.conftest import check_evaluations, materialization

    storage = pipeline.storage
    folder = storage.root_path / data_prefix("customers", DAY)
    table = pq.ParquetDataset(sorted(folder.glob("*.parquet"))).read()
    for path in folder.glob("*.parquet"):
        path.unlink()
    for index in range(200):
        pq.write_table(table.slice(index * 50, 50), folder / f"tiny-{index:04d}.parquet")
    models = ["churn_xgb", "churn_logreg"]

    result = pipeline.score(DAY, *models)
    for model in models:
        meta = materialization(result, model)
        assert (meta["input_files"], meta["files_scored_now"], meta["rows"]) == (
            200, 200, table.num_rows)
        assert meta["outputs"] == 2
        checks = check_evaluations(result, model)
        assert checks["predictions_complete"].passed and checks["predictions_valid"].passed
        outputs = sorted(prefix_path_of(storage, model).glob("*.parquet"))
        assert [p.name for p in outputs] == ["tiny-0000.packed-100.parquet",
                                            "tiny-0100.packed-100.parquet"]

    first = pq.read_table(folder / "tiny-0150.parquet")  # re-delivered, same rows
    (folder / "tiny-0150.parquet").unlink()
    pq.write_table(first, folder / "tiny-0150.parquet", compression="gzip")
    result = pipeline.score(DAY, *models)
    for model in models:
        meta = materialization(result, model)
        assert (meta["files_scored_now"], meta["files_already_done"]) == (100, 100)
        assert meta["rows"] == meta["rows_scored_now"] * 2 == table.num_rows
        ids = [i for p in prefix_path_of(storage, model).glob("*.parquet")
               for i in pq.read_table(p)["customer_id"].to_pylist()]
        assert sorted(ids) == sorted(table["customer_id"].to_pylist())
    def data_files():  # as the sensor lists them
        return [o for o in storage.list_objects(data_prefix("customers", DAY))
                if o.key.endswith(".parquet")]

    assert scored_already(storage, models, DAY, data_files(), data_prefix("customers", DAY))
    (folder / "tiny-0042.parquet").write_bytes((folder / "tiny-0042.parquet").read_bytes())
    assert not scored_already(storage, models, DAY, data_files(),
                              data_prefix("customers", DAY))


def prefix_path_of(storage, model: str) -> Path:
    return storage.root_path / predictions_prefix(model, DAY)

"""A day of many tiny files: scored completely and exactly like the same rows in a
few files (small row groups are packed into units and predicted together), written
as packs (one output and one manifest for many small files, ``container.pack_output``)
with the manifest's size, digest and every input's rows, and a corrupt file failing
the job after exactly the files before it were published."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.engines import lay_out_instance
from benchmarks.workloads import feature_block, feature_table, prepare, workload_specs
from container.__main__ import main
from container.contract import (
    CONFIG_INPUT,
    DATA_INPUT,
    MODEL_INPUT,
    NUM_CPUS_ENV_VAR,
    PACK_MAX_FILES,
    PACK_MAX_ROWS,
    PREDICTIONS_OUTPUT,
    ROOT_ENV_VAR,
    SCORING_PLAN_FILE,
    PlannedModel,
    ScoringPlan,
    input_path,
    opt_ml_relative,
    output_path,
)
from container.environment import write_standalone_config
from container.scored_files import InputFile
from container.scoring import open_inputs
from container.units import plan_units
from tests.support.helpers import corrupt_data_page

ROWS = 3_000


@pytest.fixture(scope="module")
def linear_model(tmp_path_factory) -> Path:
    (spec,) = [s for s in workload_specs("tiny") if s.name == "W2"]
    return prepare(spec, tmp_path_factory.mktemp("workloads")).model_dir


def rows(first: int, count: int, float64: bool = False) -> pa.Table:
    """Rows ``first .. first + count`` (the same values whatever the layout); with
    ``float64`` the features are stored as doubles (another schema, same values)."""
    block = feature_block(np.random.default_rng(7), ROWS)[first:first + count]
    table = feature_table(np.arange(first, first + count, dtype=np.int64), block)
    if float64:
        table = table.cast(pa.schema([f if f.name == "id" else f.with_type(pa.float64())
                                      for f in table.schema]))
    return table


def write_few(folder: Path) -> None:
    """Two files: the first 2,000 rows as float32, the rest as float64."""
    folder.mkdir(parents=True)
    pq.write_table(rows(0, 2_000), folder / "a.parquet")
    pq.write_table(rows(2_000, ROWS - 2_000, float64=True), folder / "b.parquet")


def write_many(folder: Path) -> list[str]:
    """The same rows as 300 files of 0 to 19 rows, some of several row groups, the
    float64 rows last (so one unit holds both schemas); returns the file names."""
    folder.mkdir(parents=True)
    sizes = [(i * 7) % 20 for i in range(299)]
    sizes.append(ROWS - sum(sizes))
    names, first = [], 0
    for index, size in enumerate(sizes):
        name = f"part-{index:04d}.parquet"
        table = rows(first, size, float64=first >= 2_000)
        if first < 2_000 < first + size:  # one file straddling the schema change: split it
            table = rows(first, 2_000 - first)
            size = 2_000 - first
        pq.write_table(table, folder / name, row_group_size=8 if index % 10 == 3 else None)
        names.append(name)
        first += size
    if first < ROWS:
        pq.write_table(rows(first, ROWS - first, float64=True), folder / "zz-rest.parquet")
        names.append("zz-rest.parquet")
    return names


def infer(root: Path, monkeypatch, *args: str) -> int:
    monkeypatch.setenv(ROOT_ENV_VAR, str(root))
    monkeypatch.setenv(NUM_CPUS_ENV_VAR, "2")
    return main(["infer", *args])


def scored(output: Path) -> pa.Table:
    tables = [pq.read_table(p) for p in sorted(output.glob("*.parquet"))]
    return pa.concat_tables(tables).sort_by("id")


def outputs_and_manifests(output: Path) -> list[tuple[dict, Path]]:
    """Each manifest with its output file."""
    found = []
    for path in sorted((output / "_manifests").glob("*.json")):
        manifest = json.loads(path.read_text())
        found.append((manifest, output / manifest["output"]))
    return found


def covered_inputs(manifest: dict) -> list[dict]:
    return manifest["packed"] or [{"input": manifest["input"], "rows": manifest["rows_in"],
                                   "input_bytes": manifest["input_bytes"]}]


def test_hundreds_of_tiny_files_score_exactly_like_few_files_in_one_pack(
        tmp_path, monkeypatch, linear_model):
    """300 files of 0 to 19 rows (two feature schemas, some files of several row
    groups) make one output and one manifest that lists every file with its rows,
    in the output's row order; the predictions equal the few-files run's bit for bit."""
    write_few(tmp_path / "few")
    names = write_many(tmp_path / "many")
    few_out = lay_out_instance(tmp_path / "run-few" / "opt_ml", tmp_path / "few", linear_model)
    many_out = lay_out_instance(tmp_path / "run-many" / "opt_ml", tmp_path / "many",
                                linear_model)
    assert infer(tmp_path / "run-few" / "opt_ml", monkeypatch) == 0
    assert infer(tmp_path / "run-many" / "opt_ml", monkeypatch) == 0

    expected, got = scored(few_out), scored(many_out)
    assert got.num_rows == ROWS and got["id"].to_pylist() == list(range(ROWS))
    assert got.equals(expected)  # the same predictions, bit for bit
    ((manifest, output),) = outputs_and_manifests(many_out)
    assert output.name == f"part-0000.packed-{len(names)}.parquet"
    data = output.read_bytes()
    assert manifest["output_bytes"] == len(data)
    assert manifest["output_sha256"] == hashlib.sha256(data).hexdigest()
    assert pq.read_metadata(output).num_row_groups == 1
    assert [p["input"] for p in manifest["packed"]] == names
    source_ids = []
    for packed in manifest["packed"]:
        source = tmp_path / "many" / packed["input"]
        assert packed["rows"] == pq.read_metadata(source).num_rows
        assert packed["input_bytes"] == source.stat().st_size
        source_ids += pq.read_table(source)["id"].to_pylist()
    assert pq.read_table(output)["id"].to_pylist() == source_ids  # input order, contiguous
    assert manifest["rows_in"] == manifest["rows_out"] == ROWS


def test_packs_close_at_their_file_and_row_limits_and_big_files_stay_alone(
        tmp_path, monkeypatch, linear_model):
    """1,050 one-row files with a 2,000-row file among them: the first 1,000 small
    files fill one pack (PACK_MAX_FILES) around the big file's own output, the last
    50 make another. Then 70 files of 1,000 rows: a pack closes before it would pass
    PACK_MAX_ROWS rows."""
    data = tmp_path / "data"
    data.mkdir()
    for index in range(1_051):
        count = 2_000 if index == 500 else 1
        pq.write_table(rows(index % 900, count) if count == 1 else rows(0, count),
                       data / f"part-{index:05d}.parquet")
    root = tmp_path / "opt_ml"
    output = lay_out_instance(root, data, linear_model)
    assert infer(root, monkeypatch) == 0
    shapes = sorted((Path(m["output"]).name, len(covered_inputs(m)))
                    for m, _ in outputs_and_manifests(output))
    assert shapes == [("part-00000.packed-1000.parquet", PACK_MAX_FILES),
                      ("part-00500.parquet", 1),
                      ("part-01001.packed-50.parquet", 50)]

    wide = tmp_path / "wide"
    wide.mkdir()
    for index in range(70):
        pq.write_table(rows(0, 1_000), wide / f"part-{index:05d}.parquet")
    root = tmp_path / "opt_ml_wide"
    output = lay_out_instance(root, wide, linear_model)
    assert infer(root, monkeypatch) == 0
    packs = sorted((Path(m["output"]).name, m["rows_out"])
                   for m, _ in outputs_and_manifests(output))
    per_pack = PACK_MAX_ROWS // 1_000
    assert packs == [("part-00000.packed-65.parquet", per_pack * 1_000),
                     (f"part-{per_pack:05d}.packed-5.parquet", 5_000)]


def test_a_corrupt_file_among_tiny_ones_fails_after_the_files_before_it(
        tmp_path, monkeypatch, linear_model):
    """The job fails naming the corrupt file; the pack of the whole files before it
    is published (nothing of the corrupt file or after it)."""
    data = tmp_path / "data"
    data.mkdir()
    for index in range(150):
        pq.write_table(rows(index * 20, 20), data / f"part-{index:04d}.parquet")
    corrupt_data_page(data / "part-0100.parquet")
    root = tmp_path / "opt_ml"
    output = lay_out_instance(root, data, linear_model)

    assert infer(root, monkeypatch, "--workers", "1") == 2
    assert "part-0100.parquet" in (root / "output" / "message").read_text()
    ((manifest, published),) = outputs_and_manifests(output)
    assert published.name == "part-0000.packed-100.parquet"
    assert [p["input"] for p in manifest["packed"]] == [
        f"part-{i:04d}.parquet" for i in range(100)]
    assert pq.read_table(published)["id"].to_pylist() == list(range(2_000))
    assert sorted(p.name for p in output.glob("*.parquet")) == [published.name]


def test_models_scoring_different_files_of_one_unit(tmp_path, monkeypatch, linear_model):
    """Two models in one job, the second scoring only the odd files: each model packs
    exactly its files, and their predictions of a file are the same."""
    data = tmp_path / "data"
    data.mkdir()
    for index in range(40):
        pq.write_table(rows(index * 10, 10), data / f"part-{index:04d}.parquet")
    models = tmp_path / "models"
    for name in ("m0", "m1"):
        bundle = models / name
        bundle.mkdir(parents=True)
        for path in linear_model.iterdir():
            if path.is_file():
                (bundle / path.name).write_bytes(path.read_bytes())
        metadata = json.loads((bundle / "model.json").read_text())
        (bundle / "model.json").write_text(json.dumps(metadata | {"name": name}))
    root = tmp_path / "opt_ml"
    for channel, folder in ((DATA_INPUT, data), (MODEL_INPUT, models)):
        local = root / opt_ml_relative(input_path(channel))
        local.parent.mkdir(parents=True, exist_ok=True)
        local.symlink_to(folder, target_is_directory=True)
    odd = [f"part-{i:04d}.parquet" for i in range(1, 40, 2)]
    config = root / opt_ml_relative(input_path(CONFIG_INPUT))
    config.mkdir(parents=True)
    plan = ScoringPlan([PlannedModel(name="m0", bundle="m0", output="m0"),
                        PlannedModel(name="m1", bundle="m1", output="m1", files=odd)])
    (config / SCORING_PLAN_FILE).write_text(json.dumps(plan.to_dict()))
    write_standalone_config(root, inputs=(DATA_INPUT, MODEL_INPUT, CONFIG_INPUT),
                            outputs=(PREDICTIONS_OUTPUT,))

    assert infer(root, monkeypatch) == 0
    output = root / opt_ml_relative(output_path(PREDICTIONS_OUTPUT))
    ((all_files, all_output),) = outputs_and_manifests(output / "m0")
    ((odd_files, odd_output),) = outputs_and_manifests(output / "m1")
    assert [p["input"] for p in all_files["packed"]] == [
        f"part-{i:04d}.parquet" for i in range(40)]
    assert [p["input"] for p in odd_files["packed"]] == odd
    everything = pq.read_table(all_output)
    odd_ids = [i for i in range(400) if (i // 10) % 2 == 1]
    assert pq.read_table(odd_output).equals(
        everything.filter(pa.compute.is_in(everything["id"], pa.array(odd_ids))))


def test_units_pack_small_row_groups_and_leave_big_ones_alone(tmp_path):
    sizes = [100] * 10 + [500] + [100] * 3
    opened = []
    for index, size in enumerate(sizes):
        path = tmp_path / f"f{index:02d}.parquet"
        pq.write_table(rows(0, size), path)
        opened += open_inputs([InputFile(path, path.name)])

    units = list(plan_units(opened, batch_rows=450, max_parts=4))
    assert [[p.relative for p in unit] for unit in units] == [
        ["f00.parquet", "f01.parquet", "f02.parquet", "f03.parquet"],
        ["f04.parquet", "f05.parquet", "f06.parquet", "f07.parquet"],
        ["f08.parquet", "f09.parquet"],
        ["f10.parquet"],  # more rows than a unit holds: a unit of its own
        ["f11.parquet", "f12.parquet", "f13.parquet"],
    ]
    assert [sum(p.rows for p in unit) for unit in units] == [400, 400, 200, 500, 300]


def test_footers_are_read_whole_in_one_or_two_reads(tmp_path):
    """A small footer comes with the first ranged read; one bigger than that read
    (thousands of columns) is read again whole; a file that is not Parquet is named."""
    from batch_assets.planning.parquet_footer import TAIL_GUESS_BYTES, read_footer
    from resources.storage import LocalBucketStorage

    storage = LocalBucketStorage(root=str(tmp_path / "bucket"))
    small = rows(0, 50)
    wide = pa.table({f"column_{i:05d}": pa.array([float(i)]) for i in range(3_000)})
    for key, table in (("small.parquet", small), ("wide.parquet", wide)):
        pq.write_table(table, tmp_path / key)
        storage.upload_file(tmp_path / key, key)
    footer_bytes = int.from_bytes((tmp_path / "wide.parquet").read_bytes()[-8:-4], "little")
    assert footer_bytes > TAIL_GUESS_BYTES  # the second-read path is exercised

    assert read_footer(storage, "small.parquet").num_rows == 50
    wide_footer = read_footer(storage, "wide.parquet")
    assert (wide_footer.num_rows, wide_footer.num_columns) == (1, 3_000)
    storage.write_bytes("not.parquet", b"x" * 100)
    with pytest.raises(ValueError, match=r"not\.parquet is not a Parquet file"):
        read_footer(storage, "not.parquet")


def test_runner_output_scan_lists_nested_files_and_skips_symlinks(tmp_path):
    from resources.local_processing.supervisor import _output_files

    (tmp_path / "m0" / "_manifests").mkdir(parents=True)
    (tmp_path / "m0" / "a.parquet").write_bytes(b"12345")
    (tmp_path / "m0" / "_manifests" / "a.json").write_bytes(b"{}")
    (tmp_path / "link.parquet").symlink_to(tmp_path / "m0" / "a.parquet")
    (tmp_path / "linked-folder").symlink_to(tmp_path / "m0", target_is_directory=True)

    found = {relative: signature[0] for _m, _p, relative, signature in
             _output_files(tmp_path)}
    assert found == {"m0/a.parquet": 5, "m0/_manifests/a.json": 2}
    assert _output_files(tmp_path / "missing") == []

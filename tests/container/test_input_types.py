"""Every Arrow type a feature column can arrive in, through the real container (``infer``):
each is scored exactly as the framework scores the same values, or refused with a
message naming the file, the column, its type and the fix. Nothing is cast to a
different value on the way (``container.model_inputs``).

Two models take the same two features: an XGBoost booster, which computes in float32,
and a scikit-learn pipeline (imputer, scaler, logistic regression), which computes in
float64; each with its fast path (oneDAL, the folded linear map) and its framework.
"""

from __future__ import annotations

import decimal
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xgboost as xgb

from benchmarks.engines import lay_out_instance
from container.__main__ import main
from container.contract import NUM_CPUS_ENV_VAR, ROOT_ENV_VAR
from tests.support.framework_bundles import KEY, write_bundle
from tests.support.helpers import read_outputs

FEATURES = ["a", "b"]
ROWS = 400
TYPED = {  # feature a's values as each Arrow type takes them exactly
    "int8": (pa.int8(), np.arange(ROWS) % 200 - 100),
    "int16": (pa.int16(), np.arange(ROWS) * 7 - 1_000),
    "int32": (pa.int32(), np.arange(ROWS) * 40_000 - 8_000_000),
    "int64": (pa.int64(), np.arange(ROWS) * 40_000 - 8_000_000),
    "uint8": (pa.uint8(), np.arange(ROWS) % 250),
    "uint16": (pa.uint16(), np.arange(ROWS) * 100),
    "uint32": (pa.uint32(), np.arange(ROWS) * 40_000),
    "uint64": (pa.uint64(), np.arange(ROWS) * 40_000),
    "float16": (pa.float16(), (np.arange(ROWS) / 37 - 5).astype(np.float16)),
    "float32": (pa.float32(), (np.arange(ROWS) / 37 - 5).astype(np.float32)),
    "float64": (pa.float64(), np.arange(ROWS) / 37.3 - 5),
    "bool": (pa.bool_(), np.arange(ROWS) % 3 == 0),
}


def _b() -> np.ndarray:
    return np.random.default_rng(1).standard_normal(ROWS).astype(np.float32)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """An XGBoost and a scikit-learn bundle over features a and b (a in the millions,
    so integer features matter)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    root = tmp_path_factory.mktemp("bundles")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(0, 4e6, 4_000), "b": rng.standard_normal(4_000)})
    label = ((frame["a"] / 4e6 + frame["b"]) > 0).astype(int)
    found = {}
    booster = xgb.XGBClassifier(n_estimators=20, max_depth=4).fit(frame, label).get_booster()
    found["xgboost"] = root / "xgboost"
    found["xgboost"].mkdir()
    booster.save_model(str(found["xgboost"] / "model.ubj"))
    write_bundle(found["xgboost"], "xgboost", "model.ubj", "binary", FEATURES)
    pipeline = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression())
    pipeline.fit(frame, label)
    found["sklearn"] = root / "sklearn"
    found["sklearn"].mkdir()
    joblib.dump(pipeline, found["sklearn"] / "model.joblib")
    write_bundle(found["sklearn"], "sklearn", "model.joblib", "binary", FEATURES)
    return found


def _write(folder: Path, columns: dict[str, pa.Array], name: str = "part-0.parquet",
           first_key: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = len(next(iter(columns.values())))
    keys = pa.array(np.arange(first_key, first_key + rows), pa.int64())
    pq.write_table(pa.table({KEY: keys, **columns}), folder / name)


def _run(tmp_path: Path, monkeypatch, data: Path, bundle: Path,
         predictor: str) -> tuple[int, str, Path]:
    root = tmp_path / f"opt_ml-{len(list(tmp_path.glob('opt_ml-*')))}"
    output = lay_out_instance(root, data, bundle)
    monkeypatch.setenv(ROOT_ENV_VAR, str(root))
    monkeypatch.setenv(NUM_CPUS_ENV_VAR, "2")
    status = main(["infer", "--predictor", predictor])
    message = root / "output/message"
    return status, message.read_text() if message.exists() else "", output


def _framework_predictions(framework: str, bundle: Path, frame: pd.DataFrame) -> np.ndarray:
    """The framework's own predictions for the same values (its own conversions)."""
    if framework == "xgboost":
        booster = xgb.Booster()
        booster.load_model(str(bundle / "model.ubj"))
        return booster.inplace_predict(frame[FEATURES].to_numpy(np.float64))
    return joblib.load(bundle / "model.joblib").predict_proba(frame[FEATURES])[:, 1]


def _scored_exactly(tmp_path, monkeypatch, bundles, data: Path, frame: pd.DataFrame) -> None:
    for framework, bundle in bundles.items():
        expected = _framework_predictions(framework, bundle, frame)
        for predictor in ("auto", "framework"):
            status, message, output = _run(tmp_path, monkeypatch, data, bundle, predictor)
            assert status == 0, message
            scored = read_outputs(output).sort_by(KEY).column("prediction").to_numpy()
            assert np.max(np.abs(scored - expected)) <= 1e-6, (framework, predictor)


@pytest.mark.parametrize("type_name", sorted(TYPED))
def test_each_numeric_type_is_scored_as_the_framework_scores_its_values(
        tmp_path, monkeypatch, bundles, type_name):
    arrow_type, values = TYPED[type_name]
    data = tmp_path / "data"
    _write(data, {"a": pa.array(values, arrow_type), "b": pa.array(_b())})
    frame = pd.DataFrame({"a": np.asarray(values, np.float64), "b": _b()})
    _scored_exactly(tmp_path, monkeypatch, bundles, data, frame)


def test_dictionary_encoded_numbers_and_an_all_null_column_are_scored(tmp_path, monkeypatch,
                                                                      bundles):
    values = np.round(np.arange(ROWS) % 5 * 1.5e6, 1)
    data = tmp_path / "data"
    _write(data, {"a": pa.array(values).dictionary_encode(), "b": pa.array(_b())})
    _scored_exactly(tmp_path, monkeypatch, bundles, data,
                    pd.DataFrame({"a": values, "b": _b()}))
    nulls = tmp_path / "nulls"
    _write(nulls, {"a": pa.nulls(ROWS), "b": pa.array(_b())})  # missing: native handling
    _scored_exactly(tmp_path, monkeypatch, bundles, nulls,
                    pd.DataFrame({"a": np.full(ROWS, np.nan), "b": _b()}))


def test_a_column_whose_type_differs_between_files_of_a_day(tmp_path, monkeypatch, bundles):
    data = tmp_path / "data"
    first, second = np.arange(200) * 1_000 - 50_000, np.arange(200) / 7 + 0.5
    _write(data, {"a": pa.array(first, pa.int32()), "b": pa.array(_b()[:200])},
           "part-0.parquet")
    _write(data, {"a": pa.array(second, pa.float64()), "b": pa.array(_b()[200:])},
           "part-1.parquet", first_key=200)
    frame = pd.DataFrame({"a": np.concatenate([first, second]).astype(np.float64),
                          "b": _b()})
    for framework, bundle in bundles.items():
        expected = _framework_predictions(framework, bundle, frame)
        status, message, output = _run(tmp_path, monkeypatch, data, bundle, "auto")
        assert status == 0, message
        # two small files: one packed output, each file's rows in order
        scored = read_outputs(output).sort_by(KEY).column("prediction").to_numpy()
        assert np.max(np.abs(scored - expected)) <= 1e-6, framework


@pytest.mark.parametrize(("column", "refused_by", "says"), [
    (pa.array([3, 2**24 + 1] * (ROWS // 2), pa.int64()), {"xgboost"},
     ["type int64", "2^24", "Deliver the column as a float type"]),
    (pa.array([3, 2**53 + 1] * (ROWS // 2), pa.uint64()), {"xgboost", "sklearn"},
     ["type uint64", "Deliver the column as a float type"]),
    (pa.array([1.0, 1e39] * (ROWS // 2), pa.float64()), {"xgboost"},
     ["(double) holds 1e+39", "beyond float32's range", "Scale the column"]),
    (pa.array([decimal.Decimal("1.10")] * ROWS, pa.decimal128(10, 2)), {"xgboost", "sklearn"},
     ["type decimal128(10, 2)", "Cast the column to float64"]),
], ids=["int64-above-2^24", "uint64-above-2^53", "float64-beyond-float32", "decimal"])
def test_values_that_would_change_are_refused_naming_file_column_type_and_fix(
        tmp_path, monkeypatch, bundles, column, refused_by, says):
    data = tmp_path / "data"
    _write(data, {"a": column, "b": pa.array(_b())})
    for framework, bundle in bundles.items():
        status, message, output = _run(tmp_path, monkeypatch, data, bundle, "auto")
        if framework in refused_by:
            assert status != 0
            assert "input file part-0.parquet" in message and "column 'a'" in message
            for part in says:
                assert part in message, (framework, message)
            assert not list(output.rglob("*.parquet"))
        else:  # in float64, the values are exact: scored as scikit-learn scores them
            assert status == 0, message
            expected = _framework_predictions(framework, bundle, pd.DataFrame(
                {"a": column.to_numpy(zero_copy_only=False).astype(np.float64),
                 "b": _b()}))
            scored = read_outputs(output).sort_by(KEY).column("prediction").to_numpy()
            assert np.max(np.abs(scored - expected)) <= 1e-6


def test_dictionary_encoded_categories_score_as_their_strings(tmp_path, monkeypatch):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(2)
    segments = np.array(["gold", "silver", "bronze"])[rng.integers(0, 3, 2_000)]
    frame = pd.DataFrame({"a": rng.standard_normal(2_000), "seg": segments})
    label = ((frame["a"] > 0) ^ (frame["seg"] == "gold")).astype(int)
    model = Pipeline([("features", ColumnTransformer([
        ("a", StandardScaler(), ["a"]),
        ("seg", OneHotEncoder(handle_unknown="ignore"), ["seg"])])),
        ("model", LogisticRegression())]).fit(frame, label)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    joblib.dump(model, bundle / "model.joblib")
    write_bundle(bundle, "sklearn", "model.joblib", "binary", ["a", "seg"],
                 categorical_features=["seg"])
    rows = frame.iloc[:ROWS]
    data = tmp_path / "data"
    _write(data, {"a": pa.array(rows["a"].to_numpy()),
                  "seg": pa.array(rows["seg"].to_numpy()).dictionary_encode()})
    expected = model.predict_proba(rows)[:, 1]
    for predictor in ("auto", "framework"):
        status, message, output = _run(tmp_path, monkeypatch, data, bundle, predictor)
        assert status == 0, message
        scored = read_outputs(output).sort_by(KEY).column("prediction").to_numpy()
        assert np.max(np.abs(scored - expected)) <= 1e-6, predictor


def test_an_all_null_column_is_refused_with_its_count_when_the_model_refuses(
        tmp_path, monkeypatch, bundles):
    bundle = tmp_path / "refusing"
    bundle.mkdir()
    (bundle / "model.ubj").write_bytes((bundles["xgboost"] / "model.ubj").read_bytes())
    write_bundle(bundle, "xgboost", "model.ubj", "binary", FEATURES,
                 missing_values="refuse")
    data = tmp_path / "data"
    _write(data, {"a": pa.nulls(ROWS), "b": pa.array(_b())})
    status, message, _ = _run(tmp_path, monkeypatch, data, bundle, "auto")
    assert status != 0
    assert "input file part-0.parquet" in message
    assert f"feature column(s) 'a' {ROWS:,} of {ROWS:,} rows" in message

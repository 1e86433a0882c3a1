"""Missing values under each declared policy, end to end through Dagster on the local
runner: models of every network framework (torch, tensorflow, onnx), one tree model
(XGBoost) and one scikit-learn pipeline, imported from artifacts trained outside the
project, score a day in which 2% of one feature's values are missing.

* ``refuse``: the model is not scored; the step names the model, the file, the
  column and the count, and writes none of its outputs; the others of the job go on.
* ``fill`` (a constant for one feature, the holdout's median for the others,
  recorded in model.json): every key once, every prediction a number, equal to the
  framework's own on the filled rows.
* ``nan_predictions``: an ONNX graph given the missing values natively returns NaN
  for those rows; by default the model fails on the file naming the count, with
  ``mark`` the rows are written as nulls, counted, and ``predictions_valid`` warns.
* Registry drift: a current version whose entry changed is not scored.
"""

from __future__ import annotations

import json

import dagster as dg
import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xgboost as xgb

from batch_assets.planning.layout import job_scoring_plan_key
from batch_assets.planning.model_pointer import read_current_model
from container.contract import ModelMetadata
from tests.conftest import SMALL_DATA, check_evaluations, materialization
from tests.support.helpers import read_outputs, worst_difference
from tests.support.registries import add_models, edit_registry
from tests.support.registries import model as registry_model

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

DAY = SMALL_DATA.days[0]
FEATURES = [f"x{i}" for i in range(6)]
GAPPY = "x2"  # the feature with missing values
CONSTANT = {"x0": 0.5}  # one declared constant; the others: the holdout's median
ROWS = 1_500
NETWORK_TOLERANCE = 1e-5  # float32 graphs (container.predictors.fastest)
EXACT = 1e-6


def _frame(rng: np.random.Generator, first_key: int) -> pd.DataFrame:
    matrix = rng.standard_normal((ROWS, len(FEATURES))).astype(np.float32)
    frame = pd.DataFrame(matrix, columns=FEATURES)
    frame.loc[rng.random(ROWS) < 0.02, GAPPY] = np.nan
    frame.insert(0, "customer_id", np.arange(first_key, first_key + ROWS))
    frame["label"] = (matrix[:, 0] + matrix[:, 1] - matrix[:, 2] > 0).astype(np.int64)
    return frame


def _write(frame: pd.DataFrame, path) -> None:
    """As Parquet carries missing values: nulls."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _artifacts(tmp_path, holdout: pd.DataFrame) -> dict[str, tuple[str, object]]:
    """framework -> (artifact path, the model as its framework scores it), each trained
    here on complete rows as a team would elsewhere."""
    complete = holdout.dropna()
    x = complete[FEATURES].to_numpy(np.float32)
    y = complete["label"].to_numpy()
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(len(FEATURES), 8), torch.nn.ReLU(),
                                 torch.nn.Linear(8, 1), torch.nn.Sigmoid()).eval()
    torch.jit.save(torch.jit.script(module), str(tmp_path / "model.pt"))
    torch.onnx.export(module, (torch.zeros(2, len(FEATURES)),), str(tmp_path / "model.onnx"),
                      dynamo=False, input_names=["features"], output_names=["output"],
                      dynamic_axes={"features": {0: "rows"}, "output": {0: "rows"}})
    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((len(FEATURES),)),
                                keras.layers.Dense(8, activation="relu"),
                                keras.layers.Dense(1, activation="sigmoid")])
    network.save(tmp_path / "model.keras")
    booster = xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(
        holdout[FEATURES], holdout["label"]).get_booster()  # trained with missing values
    booster.save_model(str(tmp_path / "model.ubj"))
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(
        complete[FEATURES], y)
    joblib.dump(pipeline, tmp_path / "model.joblib")

    def run_torch(matrix: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(matrix)).numpy()[:, 0]

    return {
        "torch": (str(tmp_path / "model.pt"), run_torch),
        "onnx": (str(tmp_path / "model.onnx"), run_torch),  # the same network, exported
        "tensorflow": (str(tmp_path / "model.keras"),
                       lambda m: network.predict(m, verbose=0)[:, 0]),
        "xgboost": (str(tmp_path / "model.ubj"), lambda m: booster.inplace_predict(m)),
        "sklearn": (str(tmp_path / "model.joblib"),
                    lambda m: pipeline.predict_proba(pd.DataFrame(m, columns=FEATURES))[:, 1]),
    }, x


def _entry(name: str, framework: str, artifact: str, inputs: str, holdout: bool,
           output: str = "") -> str:
    lines = ["", "[[models]]", f'name = "{name}"', f'framework = "{framework}"',
             'dataset = "gappy"', f'artifact = "{artifact}"', 'key_columns = ["customer_id"]',
             f"features = {json.dumps(FEATURES)}", 'instance_type = "ml.m5.large"',
             "instance_count = 1", 'quality_metric = "roc_auc"',
             "quality_threshold = 0.0"]  # the networks are untrained: any AUC will do
    if holdout:
        lines += ['holdout_data = "holdout/gappy/"', 'label = "label"']
    lines += ["[models.inputs]", inputs]
    if output:
        lines += ["[models.output]", output]
    return "\n".join(lines) + "\n"


FILL = ('missing_values = "fill"\nfill_statistic = "median"\n'
        f"fill_values = {{ x0 = {CONSTANT['x0']} }}")


@pytest.fixture(scope="module")
def scored(tmp_path_factory, trained_template):
    """One day of ``gappy`` data scored by every model and policy in one run (one
    scoring step and one job for all of them)."""
    import shutil

    from tests.conftest import make_pipeline, write_test_registry

    root = tmp_path_factory.mktemp("missing")
    shutil.copytree(trained_template, root / "bucket")
    pipeline = make_pipeline(root, write_test_registry(root / "models.toml"))
    bucket = pipeline.storage.root_path
    rng = np.random.default_rng(5)
    holdout = _frame(rng, 100_000)
    _write(holdout, bucket / "holdout/gappy/part-00000.parquet")
    day = [_frame(rng, 0), _frame(rng, ROWS)]
    for index, frame in enumerate(day):
        _write(frame.drop(columns="label"),
               bucket / f"data/gappy/dt={DAY}/part-{index:05d}.parquet")
    (bucket / f"data/gappy/dt={DAY}/_SUCCESS").write_text("")
    artifacts, _ = _artifacts(root, holdout)
    entries = []
    for framework, (artifact, _) in artifacts.items():
        entries.append(_entry(f"{framework}_refuse", framework, artifact,
                              'missing_values = "refuse"', holdout=False))
        entries.append(_entry(f"{framework}_fill", framework, artifact, FILL, holdout=True))
    onnx = artifacts["onnx"][0]
    entries.append(_entry("onnx_nan_fail", "onnx", onnx, 'missing_values = "native"', False))
    entries.append(_entry("onnx_nan_mark", "onnx", onnx, 'missing_values = "native"', False,
                          'nan_predictions = "mark"'))
    add_models(pipeline.registry_path, "".join(entries))
    models = [f"{f}_{p}" for f in artifacts for p in ("refuse", "fill")]
    models += ["onnx_nan_fail", "onnx_nan_mark"]
    for model in models:
        pipeline.run_job("train_models", model)
    result = pipeline.score(DAY, *models, raise_on_error=False)
    inputs = pd.concat(day).drop(columns="label")
    return pipeline, result, inputs, holdout, artifacts


def _failure_message(result) -> str:
    (failure,) = result.get_step_failure_events()
    return failure.step_failure_data.error.message


def _reason(pipeline, result, model: str) -> str:
    """Why ``model`` failed in the job its step ran (its ModelFailure record), after
    checking that the step's failure names it."""
    assert f"{model}: " in _failure_message(result)
    (record,) = (pipeline.storage.root_path / f"predictions/{model}/dt={DAY}/_failures"
                 ).glob("*.json")
    return json.loads(record.read_text())["message"]


def _rows_named(reason: str, inputs: pd.DataFrame) -> pd.DataFrame:
    """The day's rows a message names: one file's, or (one call over both) the day's."""
    if "input files part-00000.parquet to part-00001.parquet" in reason:
        return inputs
    assert "input file part-00000.parquet" in reason, reason
    return inputs.iloc[:ROWS]


def _outputs(pipeline, model: str) -> pd.DataFrame:
    return read_outputs(pipeline.storage.root_path / f"predictions/{model}/dt={DAY}").to_pandas()


def _metadata(pipeline, model: str) -> ModelMetadata:
    current = read_current_model(pipeline.storage, model)
    return ModelMetadata.from_dict(json.loads(
        (pipeline.storage.root_path / current.prefix / "model.json").read_text()))


@pytest.mark.parametrize("framework", ["torch", "tensorflow", "onnx", "xgboost", "sklearn"])
def test_a_refusing_model_is_not_scored_and_the_step_names_file_column_and_count(
        scored, framework):
    pipeline, result, inputs, _, _ = scored
    model = f"{framework}_refuse"
    reason = _reason(pipeline, result, model)
    count = int(_rows_named(reason, inputs)[GAPPY].isna().sum())
    assert f"'{GAPPY}' {count:,} of" in reason and "refuses missing values" in reason
    assert 'missing_values = "fill"' in reason  # the fix
    assert not list((pipeline.storage.root_path / f"predictions/{model}").rglob("*.parquet"))
    assert model not in {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}


@pytest.mark.parametrize("framework", ["torch", "tensorflow", "onnx", "xgboost", "sklearn"])
def test_a_filling_model_scores_every_row_as_its_framework_scores_the_filled_rows(
        scored, framework):
    pipeline, result, inputs, holdout, artifacts = scored
    model = f"{framework}_fill"
    metadata = _metadata(pipeline, model)
    known = holdout[FEATURES].astype(np.float64)
    expected_fills = {name: float(np.median(known[name].dropna())) for name in FEATURES}
    expected_fills |= CONSTANT
    assert metadata.missing_values == "fill" and metadata.fill_statistic == "median"
    assert metadata.fill_values == pytest.approx(expected_fills)
    outputs = _outputs(pipeline, model)
    assert outputs["customer_id"].is_unique and len(outputs) == len(inputs)  # every key once
    assert outputs["prediction"].notna().all()
    filled = inputs[FEATURES].astype(np.float32).fillna(
        {k: np.float32(v) for k, v in metadata.fill_values.items()})
    reference = artifacts[framework][1](filled.to_numpy(np.float32))
    joined = inputs.assign(expected=np.asarray(reference, np.float64)).merge(
        outputs, on="customer_id")
    tolerance = NETWORK_TOLERANCE if framework in ("torch", "tensorflow", "onnx") else EXACT
    assert worst_difference(joined["prediction"], joined["expected"]) <= tolerance
    meta = materialization(result, model)
    assert meta["predictors"].endswith(f": {len(inputs):,} rows")  # one path, every row


def test_nan_predictions_fail_the_model_by_default_naming_the_count(scored):
    pipeline, result, inputs, _, _ = scored
    reason = _reason(pipeline, result, "onnx_nan_fail")
    count = int(_rows_named(reason, inputs)[GAPPY].isna().sum())
    assert f"returned no number (NaN) for {count:,} of" in reason
    assert f"{count:,} of the rows have a missing feature value" in reason
    assert 'nan_predictions = "mark"' in reason  # the other way out
    assert not list((pipeline.storage.root_path / "predictions/onnx_nan_fail").rglob(
        "*.parquet"))


def test_marked_nan_predictions_are_nulls_counted_and_warned_about(scored):
    pipeline, result, inputs, _, _ = scored
    outputs = _outputs(pipeline, "onnx_nan_mark")
    assert len(outputs) == len(inputs) and outputs["customer_id"].is_unique
    gaps = set(inputs.loc[inputs[GAPPY].isna(), "customer_id"])
    assert set(outputs.loc[outputs["prediction"].isna(), "customer_id"]) == gaps
    table = read_outputs(pipeline.storage.root_path / f"predictions/onnx_nan_mark/dt={DAY}")
    assert table.column("prediction").null_count == len(gaps)  # nulls, not NaN
    manifests = (pipeline.storage.root_path /
                 f"predictions/onnx_nan_mark/dt={DAY}/_manifests").glob("*.json")
    assert sum(json.loads(p.read_text())["predictions"]["nan_count"]
               for p in manifests) == len(gaps)
    valid = check_evaluations(result, "onnx_nan_mark")["predictions_valid"]
    assert not valid.passed and valid.severity == dg.AssetCheckSeverity.WARN
    assert valid.metadata["unscored_rows"].value == len(gaps)
    assert f"{len(gaps):,} rows in 2 output file(s) have no prediction" in valid.description
    assert "re-import it with [models.inputs]" in valid.description


def test_the_other_models_of_the_job_are_materialized(scored):
    _, result, _, _, _ = scored
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert materialized == {"torch_fill", "tensorflow_fill", "onnx_fill", "xgboost_fill",
                            "sklearn_fill", "onnx_nan_mark"}


def test_a_changed_registry_entry_stops_scoring_before_any_job(pipeline):
    """The issue's case: tier_xgb's current version is multiclass; its entry now says
    binary. It is not scored and no job runs for it; churn_xgb beside it is."""
    def drift(data: dict) -> None:
        tier = registry_model(data, "tier_xgb")
        assert (tier["task"], tier["output"]["passthrough_columns"]) == (
            "multiclass", ["segment", "f06"])
        tier["task"], tier["output"]["passthrough_columns"] = "binary", ["segment"]

    edit_registry(pipeline.registry_path, drift)

    result = pipeline.score(DAY, "tier_xgb", "churn_xgb", raise_on_error=False)

    message = _failure_message(result)
    assert "the registry entry of model 'tier_xgb' no longer matches its current version" \
        in message
    assert "task: registry 'binary', version 'multiclass'" in message
    assert "output.passthrough_columns: registry lacks [f06]" in message
    assert "Materialize trained_model[tier_xgb] again" in message
    assert "[invalid request: not retried]" in message
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert materialized == {"churn_xgb"}
    (attempt,) = pipeline.attempts(DAY, "churn_xgb")
    plan = pipeline.storage.read_json(job_scoring_plan_key(attempt.job_name))
    assert [m["name"] for m in plan["models"]] == ["churn_xgb"]

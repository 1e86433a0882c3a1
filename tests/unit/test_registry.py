"""The model registry: the shipped file is valid; mistakes name the file, model and field."""

from __future__ import annotations

import pytest

from batch_assets.registry import (
    DEFAULT_REGISTRY_PATH,
    RegistryError,
    UnknownModelError,
    load_registry,
)


def test_shipped_registry_has_binary_and_regression_models():
    registry = load_registry()
    assert registry.model_names == ["churn_xgb", "churn_logreg", "customer_value_xgb"]
    xgb, logreg = registry.get("churn_xgb"), registry.get("churn_logreg")
    assert xgb.framework == "xgboost" and len(xgb.features) >= 30
    assert xgb.task == logreg.task == "binary" and xgb.passthrough_columns == ()
    assert logreg.framework == "sklearn" and logreg.categorical_features == ("segment",)
    value = registry.get("customer_value_xgb")
    assert (value.task, value.quality_metric, value.passthrough_columns) == (
        "regression", "rmse", ("segment",))


def test_quality_threshold_direction_follows_the_metric(tmp_path):
    """rmse, mae and logloss: lower is better, so the threshold is a maximum; roc_auc,
    accuracy and r2: a minimum."""
    value = load_registry().get("customer_value_xgb")
    assert value.quality_threshold_is_maximum
    assert value.quality_passes(value.quality_threshold - 0.1)
    assert value.quality_passes(value.quality_threshold)
    assert not value.quality_passes(value.quality_threshold + 0.1)
    assert not value.quality_passes(None) and not value.quality_passes(float("nan"))
    churn = load_registry().get("churn_xgb")
    assert not churn.quality_threshold_is_maximum
    assert churn.quality_passes(0.9) and not churn.quality_passes(0.5)
    path = tmp_path / "models.toml"
    path.write_text(DEFAULT_REGISTRY_PATH.read_text().replace(
        'quality_metric = "rmse"\nquality_threshold = 1.5',
        'quality_metric = "r2"\nquality_threshold = -0.5'))
    r2 = load_registry(path).get("customer_value_xgb")
    assert r2.quality_passes(0.0) and not r2.quality_passes(-0.6)


def test_unknown_model_lists_registered_names():
    with pytest.raises(UnknownModelError) as error:
        load_registry().get("churn_rf")
    assert "churn_rf" in str(error.value)
    assert "churn_xgb, churn_logreg, customer_value_xgb" in str(error.value)


BROKEN = [
    ('framework = "xgboost"', 'framework = "lightgbm"',
     "framework 'lightgbm' cannot be trained here (training_data trains xgboost, sklearn); "
     "import a lightgbm model instead: replace training_data with artifact"),
    ('framework = "xgboost"', 'framework = "caffe"', "framework 'caffe' is not one of"),
    ('task = "regression"', 'task = "ranking"',
     "model #3 ('customer_value_xgb'): task 'ranking' is not one of binary, multiclass, "
     "regression"),
    ('quality_metric = "rmse"', 'quality_metric = "roc_auc"',
     "quality_metric 'roc_auc' does not fit task 'regression'; a regression model is measured "
     "by one of rmse, mae, r2"),
    ('quality_metric = "roc_auc"\nquality_threshold = 0.70',
     'quality_metric = "rmse"\nquality_threshold = 0.70',
     "model #1 ('churn_xgb'): quality_metric 'rmse' does not fit task 'binary'; a binary "
     "model is measured by one of roc_auc, logloss, accuracy"),
    ('quality_metric = "rmse"\nquality_threshold = 1.5',
     'quality_metric = "rmse"\nquality_threshold = -1',
     "quality_threshold for rmse is a maximum and must be at least 0, got -1"),
    ('quality_metric = "rmse"\nquality_threshold = 1.5',
     'quality_metric = "r2"\nquality_threshold = 1.5',
     "quality_threshold for r2 is a minimum of at most 1, got 1.5"),
    ('quality_threshold = 0.70', 'quality_threshold = "high"',
     "quality_threshold must be a number, got 'high'"),
    ('passthrough_columns = ["segment"]', 'passthrough_columns = ["customer_id"]',
     "output.passthrough_columns lists key column 'customer_id'; key columns are in every "
     "output already"),
    ('passthrough_columns = ["segment"]', 'passthrough_columns = ["segment", "segment"]',
     "output.passthrough_columns lists a column twice"),
    ('passthrough_columns = ["segment"]', "passthrough_columns = [3]",
     "output.passthrough_columns must contain column names"),
    ('passthrough_columns = ["segment"]', 'passthrough_columns = ["prediction"]',
     "column 'prediction' would clash with the prediction columns of the output"),
    ('passthrough_columns = ["segment"]', 'passthrough_columns = ["probability_a"]',
     "column 'probability_a' would clash"),
    ('passthrough_columns = ["segment"]', 'passthrough = ["segment"]',
     "output: unknown setting(s) passthrough; allowed: passthrough_columns"),
    ('name = "churn_xgb"', 'name = "Churn-XGB"', "name must be"),
    ("instance_count = 2", "instance_count = 0", "instance_count must be"),
    ("quality_threshold = 0.70", "quality_threshold = 7",
     "quality_threshold must be a number in [0, 1] for roc_auc (a minimum), got 7"),
    ('training_data = "training/customers/"', 'training_data = "training"', "training_data"),
    ('categorical_features = ["segment"]', 'categorical_features = ["nope"]', "subset"),
    ('key_columns = ["customer_id"]\nfeatures = [\n  "f00"',
     'key_columns = ["f00"]\nfeatures = [\n  "f00"', "both a key column and a feature"),
    ('dataset = "customers"', 'dataset = "customers"\ncolour = "red"', "unknown field(s) colour"),
    ('partitions_start_date = "2026-11-01"', 'partitions_start_date = "Nov 1"', "YYYY-MM-DD"),
    ('name = "churn_logreg"', 'name = "churn_xgb"', "appears twice"),
    ("[models.hyperparameters]\nn_estimators",
     '[models.inference]\npredictor = "fastest"\n\n[models.hyperparameters]\nn_estimators',
     "inference.predictor must be one of auto, framework, not 'fastest'"),
    ("[models.hyperparameters]\nn_estimators",
     "[models.inference]\nworkers = true\n\n[models.hyperparameters]\nn_estimators",
     "inference.workers must be a whole number of at least 1"),
    ('label = "label"', 'label = ["label"]',
     "model #1 ('churn_xgb'): label must be one column name (a string without spaces or '/'), "
     "got ['label']"),
    ('label = "label"', 'label = "the label"', "label must be one column name"),
    ('label = "label"', 'label = "customer_id"', "label 'customer_id' is also a key column"),
    ('label = "label"', 'label = "f00"', "label 'f00' is also a feature"),
    ('instance_type = "ml.m5.xlarge"', 'instance_type = "m5.xlarge"',
     "model #1 ('churn_xgb'): instance_type 'm5.xlarge' is not a SageMaker instance type of "
     "the form ml.<family>.<size>; did you mean 'ml.m5.xlarge'?"),
    ('instance_type = "ml.m5.xlarge"', 'instance_type = "ml.m5"',
     "instance_type 'ml.m5' is not a SageMaker instance type of the form ml.<family>.<size>; "
     "e.g. 'ml.m5.xlarge'"),
    ('instance_type = "ml.m5.xlarge"', 'instance_type = "ML.M5.XLARGE"', "e.g. 'ml.m5.xlarge'"),
    ('instance_type = "ml.m5.xlarge"', "instance_type = 4", "instance_type 4 is not"),
    ('instance_type = "ml.m5.xlarge"',
     'instance_type = "ml.m5.xlarge"\ntraining_instance_type = "c5.2xlarge"',
     "model #1 ('churn_xgb'): training_instance_type 'c5.2xlarge' is not a SageMaker instance "
     "type of the form ml.<family>.<size>; did you mean 'ml.c5.2xlarge'?"),
    ('instance_type = "ml.m5.xlarge"',
     'instance_type = "ml.m5.xlarge"\ntraining_instance_type = ["ml.m5.large"]',
     "model #1 ('churn_xgb'): training_instance_type ['ml.m5.large'] is not"),
    ("[models.hyperparameters]\nn_estimators",
     "[models.inputs]\nmissing_values = \"guess\"\n\n[models.hyperparameters]\nn_estimators",
     "inputs.missing_values must be one of native, refuse, fill, got 'guess'"),
    ("[models.hyperparameters]\nn_estimators",
     "[models.inputs]\nmissing_values = \"refuse\"\nfill_values = { f00 = 1.0 }"
     "\n\n[models.hyperparameters]\nn_estimators",
     "inputs.fill_values and inputs.fill_statistic go with missing_values = \"fill\""),
    ("[models.hyperparameters]\nn_estimators",
     "[models.inputs]\nmissing_values = \"fill\"\nfill_values = { f00 = 1.0 }"
     "\n\n[models.hyperparameters]\nn_estimators",
     "inputs.missing_values = \"fill\" needs a value for every feature; none for f01, f02"),
    ("[models.hyperparameters]\nn_estimators",
     "[models.inputs]\nmissing_values = \"fill\"\nfill_statistic = \"median\"\n"
     "fill_values = { zz = 1.0 }"
     "\n\n[models.hyperparameters]\nn_estimators",
     "inputs.fill_values names zz, which is not a feature of this model"),
    ("[models.hyperparameters]\nn_estimators",
     "[models.inputs]\nmissing_values = \"fill\"\nfill_statistic = \"median\"\n"
     "fill_values = { f00 = true }"
     "\n\n[models.hyperparameters]\nn_estimators",
     "inputs.fill_values.f00 must be a finite number, got True"),
    ("[models.hyperparameters]\nn_estimators",
     "[models.inputs]\nmissing_values = \"fill\"\nfill_statistic = \"mode\""
     "\n\n[models.hyperparameters]\nn_estimators",
     "inputs.fill_statistic must be one of median, mean, got 'mode'"),
    ("[models.hyperparameters]\nn_estimators",
     "[models.inputs]\nfill = 0\n\n[models.hyperparameters]\nn_estimators",
     "inputs: unknown setting(s) fill; allowed: missing_values, fill_values, fill_statistic"),
    ("[models.hyperparameters]\nn_estimators",
     "[models.inputs]\nmissing_values = \"fill\"\n\n[models.hyperparameters]\nn_estimators",
     "needs a value for every feature; none for f00, f01"),
    ("[models.hyperparameters]\nC = 1.0",
     '[models.inputs]\nmissing_values = "fill"\nfill_statistic = "median"\n'
     'fill_values = { segment = 3 }\n\n[models.hyperparameters]\nC = 1.0',
     "inputs.fill_values.segment: a categorical feature is filled with a category (a string), "
     "got 3"),
    ('passthrough_columns = ["segment"]',
     'passthrough_columns = ["segment"]\nnan_predictions = "drop"',
     "output.nan_predictions must be one of fail, mark (what becomes of rows the model "
     "returns NaN for), got 'drop'"),
]


@pytest.mark.parametrize("instance_type", ["ml.m5.xlarge", "ml.c5.2xlarge", "ml.m5d.large",
                                           "ml.g4dn.xlarge", "ml.r7i.48xlarge", "ml.t3.medium",
                                           "ml.m6i.metal"])
def test_sagemaker_instance_types_are_accepted(tmp_path, instance_type):
    text = DEFAULT_REGISTRY_PATH.read_text().replace(
        'instance_type = "ml.m5.xlarge"',
        f'instance_type = "{instance_type}"\ntraining_instance_type = "{instance_type}"', 1)
    path = tmp_path / "models.toml"
    path.write_text(text)
    spec = load_registry(path).get("churn_xgb")
    assert spec.instance_type == spec.training_instance_type == instance_type
    assert spec.label == "label"


def test_inference_settings_become_container_arguments(tmp_path):
    text = DEFAULT_REGISTRY_PATH.read_text().replace(
        "[models.hyperparameters]\nn_estimators",
        '[models.inference]\nbatch_rows = 1000\npredictor = "framework"\n\n'
        "[models.hyperparameters]\nn_estimators", 1)
    path = tmp_path / "models.toml"
    path.write_text(text)
    settings = load_registry(path).get("churn_xgb").inference
    assert settings.container_arguments() == ["--batch-rows", "1000", "--predictor", "framework"]


@pytest.mark.parametrize(("old", "new", "message"), BROKEN)
def test_invalid_registry_is_rejected_with_a_useful_message(tmp_path, old, new, message):
    text = DEFAULT_REGISTRY_PATH.read_text()
    assert old in text
    path = tmp_path / "models.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(RegistryError) as error:
        load_registry(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_missing_registry_file(tmp_path):
    with pytest.raises(RegistryError, match="does not exist"):
        load_registry(tmp_path / "nope.toml")


IMPORTED_TORCH = """
partitions_start_date = "2026-11-01"

[[models]]
name = "net"
framework = "torch"
dataset = "customers"
artifact = "model.pt"
key_columns = ["customer_id"]
features = ["f00", "f01"]
instance_type = "ml.m5.xlarge"
instance_count = 1
quality_metric = "roc_auc"
quality_threshold = 0.5
"""


@pytest.mark.parametrize(("inputs", "message"), [
    ('missing_values = "native"',
     'inputs.missing_values = "native" is not allowed for torch models: a network has no '
     'native handling of missing values'),
    ('missing_values = "fill"\nfill_statistic = "median"',
     "inputs.fill_statistic is measured on the holdout rows of an imported model: give "
     "holdout_data (and label), or fill every feature with a constant"),
])
def test_a_networks_missing_value_policy_is_checked(tmp_path, inputs, message):
    path = tmp_path / "models.toml"
    path.write_text(IMPORTED_TORCH + f"[models.inputs]\n{inputs}\n")
    with pytest.raises(RegistryError) as error:
        load_registry(path)
    assert message in str(error.value)


def test_missing_value_policies_default_by_framework_and_load_as_declared(tmp_path):
    path = tmp_path / "models.toml"
    path.write_text(IMPORTED_TORCH)
    net = load_registry(path).get("net")
    assert (net.missing_values, net.resolved_missing_values) == ("", "refuse")
    assert load_registry().get("churn_xgb").resolved_missing_values == "native"
    path.write_text(IMPORTED_TORCH + '[models.inputs]\nmissing_values = "fill"\n'
                    "fill_values = { f00 = 1, f01 = -2.5 }\n"
                    '[models.output]\nnan_predictions = "mark"\n')
    net = load_registry(path).get("net")
    assert net.resolved_missing_values == "fill"
    assert net.fill_values == {"f00": 1.0, "f01": -2.5} and net.nan_predictions == "mark"


def test_categorical_features_only_for_frameworks_that_take_them(tmp_path):
    path = tmp_path / "models.toml"
    path.write_text(IMPORTED_TORCH.replace('features = ["f00", "f01"]',
                                           'features = ["f00", "f01"]\n'
                                           'categorical_features = ["f01"]'))
    with pytest.raises(RegistryError) as error:
        load_registry(path)
    assert ("categorical_features are supported for framework(s) sklearn only; encode "
            "them upstream for torch") in str(error.value)

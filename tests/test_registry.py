"""The model registry: the shipped file is valid; mistakes name the file, model and field."""

from __future__ import annotations

import pytest

from batch_assets.registry import (
    DEFAULT_REGISTRY_PATH,
    RegistryError,
    UnknownModelError,
    load_registry,
)


def test_shipped_registry_has_the_two_models():
    registry = load_registry()
    assert registry.model_names == ["churn_xgb", "churn_logreg"]
    xgb, logreg = registry.get("churn_xgb"), registry.get("churn_logreg")
    assert xgb.framework == "xgboost" and len(xgb.features) >= 30
    assert logreg.framework == "sklearn" and logreg.categorical_features == ("segment",)


def test_unknown_model_lists_registered_names():
    with pytest.raises(UnknownModelError) as error:
        load_registry().get("churn_rf")
    assert "churn_rf" in str(error.value) and "churn_xgb, churn_logreg" in str(error.value)


BROKEN = [
    ('framework = "xgboost"', 'framework = "lightgbm"', "framework 'lightgbm' is not one of"),
    ('name = "churn_xgb"', 'name = "Churn-XGB"', "name must be"),
    ("instance_count = 2", "instance_count = 0", "instance_count must be"),
    ("quality_threshold = 0.70", "quality_threshold = 7", "quality_threshold must be"),
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
    ('instance_type = "ml.m5.large"',
     'instance_type = "ml.m5.large"\ntraining_instance_type = ["ml.m5.large"]',
     "model #2 ('churn_logreg'): training_instance_type ['ml.m5.large'] is not"),
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

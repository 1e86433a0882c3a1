"""Cost estimates: the price table setting and the job cost arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from batch_assets.definitions import AWS_SETTINGS, resources_for
from resources.job_cost import job_cost, parse_instance_prices, shares


def test_prices_parse_and_errors_name_the_source():
    assert parse_instance_prices("ml.m5.xlarge=0.23, ml.m5.large=0.115", "V") == {
        "ml.m5.xlarge": 0.23, "ml.m5.large": 0.115}
    assert parse_instance_prices("", "V") == {}
    for bad in ("ml.m5.xlarge", "m5.xlarge=0.2", "ml.m5.xlarge=cheap", "ml.m5.xlarge=-1"):
        with pytest.raises(ValueError, match=r"^V: .*<USD per hour>"):
            parse_instance_prices(bad, "V")
    with pytest.raises(ValueError, match="given twice"):
        parse_instance_prices("ml.c5.xlarge=1,ml.c5.xlarge=2", "V")


def test_aws_mode_reads_prices_from_batch_instance_prices():
    environment = {"BATCH_INFERENCE_MODE": "aws",
                   **{name: "x" for name, (required, _) in AWS_SETTINGS.items() if required}}
    assert resources_for(environment)["processing"].instance_prices == {}
    priced = resources_for({**environment, "BATCH_INSTANCE_PRICES": "ml.m5.xlarge=0.23"})
    assert priced["processing"].instance_prices == {"ml.m5.xlarge": 0.23}
    with pytest.raises(dg.DagsterInvalidDefinitionError, match=r"^BATCH_INSTANCE_PRICES: "):
        resources_for({**environment, "BATCH_INSTANCE_PRICES": "ml.m5.xlarge:0.23"})


def test_job_cost_is_instances_times_seconds_at_the_listed_price():
    described = {"ProcessingJobName": "j", "ProcessingResources": {"ClusterConfig": {
        "InstanceType": "ml.m5.xlarge", "InstanceCount": 4}},
        "ProcessingStartTime": datetime(2026, 11, 1, tzinfo=UTC)}
    cost = job_cost(described, 900.0, {"ml.m5.xlarge": 0.24})
    assert cost.billed_instance_seconds == 3600.0
    assert cost.usd == pytest.approx(0.24)
    assert job_cost(described, 900.0, {}).usd is None  # no price: seconds only
    assert shares({"a": 3.0, "b": 1.0}) == {"a": 0.75, "b": 0.25}
    assert shares({"a": 0.0, "b": 0.0}) == {"a": 0.5, "b": 0.5}


def test_local_mode_reads_the_quota_and_price_tables_too():
    processing = resources_for({"BATCH_INSTANCE_QUOTAS": "ml.m5.large=4",
                                "BATCH_INSTANCE_PRICES": "ml.m5.large=0.115"})["processing"]
    assert processing.backend_name == "local"
    assert processing.instance_quotas == {"ml.m5.large": 4}
    assert processing.instance_prices == {"ml.m5.large": 0.115}
    assert resources_for({})["processing"].instance_prices == {}

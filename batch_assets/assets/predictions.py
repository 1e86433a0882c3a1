"""``predictions/<model>[date]``: one asset per model, scored per dataset-day in one pass.

Each scoring group (``batch_assets.planning.scoring_groups``: the models of one dataset on
one instance type) is one subsettable multi-asset. A run that selects some of its
models runs one step per day, and that step runs ONE sharded Processing job for
all of them: each input file is downloaded and decoded once and scored by every
model that still needs it (``container.infer``, ``ScoringPlan``). Outputs,
manifests, metadata, data versions and checks stay per model, so each model's
history is its own in the UI, and retraining one model re-scores only that one.
A model that fails (not trained, a bad artifact) costs none of the others'
outputs: they are materialized, and the step then fails naming it. The step itself
is ``assets.scoring_step.ScoringStep`` (plan, submit, report).
"""

import dagster as dg

from batch_assets.assets.data_assets import data_key
from batch_assets.assets.partitions import prediction_partitions
from batch_assets.assets.scoring_step import ScoringStep
from batch_assets.assets.step_resources import StepResources
from batch_assets.assets.trained_model import ASSET_NAME as TRAINED_MODEL
from batch_assets.assets.trained_model import GROUP
from batch_assets.checks.metadata_format import legend_markdown
from batch_assets.checks.prediction_checks import prediction_check_specs
from batch_assets.jobs.orchestration import (
    PREDICTIONS_BACKFILL,
    PROCESSING_POOL,
    TRANSIENT_RETRY,
)
from batch_assets.planning.layout import predictions_prefix
from batch_assets.planning.scoring_groups import ScoringGroup, prediction_key, scoring_groups
from batch_assets.registry import Registry
from resources.job_store import JobStore
from resources.processing import ProcessingBackend
from resources.storage import ObjectStorage


def build_prediction_assets(
    registry: Registry, retry_policy: dg.RetryPolicy = TRANSIENT_RETRY
) -> list[dg.AssetsDefinition]:
    """One multi-asset per scoring group; together one asset per registered model."""
    partitions_def = prediction_partitions(registry)
    return [_group_asset(registry, group, partitions_def, retry_policy)
            for group in scoring_groups(registry)]


def _group_asset(registry: Registry, group: ScoringGroup,
                 partitions_def: dg.PartitionsDefinition,
                 retry_policy: dg.RetryPolicy) -> dg.AssetsDefinition:
    # Dagster allows one partition mapping per upstream asset in a multi-asset, so each
    # model's predictions depend on the group's trained_model partitions (not only its
    # own). The pipeline itself is exact: a model's files count as done only for its
    # current version, so retraining one model re-scores that model alone.
    trained = dg.AssetDep(
        TRAINED_MODEL, partition_mapping=dg.SpecificPartitionsPartitionMapping(list(group.models)))
    specs = [
        dg.AssetSpec(
            prediction_key(model),
            deps=[trained, dg.AssetDep(data_key(group.dataset))],
            group_name=GROUP,
            metadata={"metadata_legend": dg.MetadataValue.md(legend_markdown())},
            kinds={"sagemaker", "parquet"},
            skippable=True,
            description=f"{model}'s predictions of a day: keys, passthrough and prediction "
            f"columns for every input file under `data/{registry.get(model).dataset}/`, "
            f"written to `{predictions_prefix(model, 'YYYY-MM-DD')}`. Scored by the "
            f"`{group.name}` step: one sharded SageMaker Processing job per day for every "
            "selected model of the dataset. Files already scored by the current model "
            "version are skipped; a run with nothing to do records `nothing_to_do: true` "
            "with the figures of the job that did the work (see `metadata_legend`).",
        )
        for model in group.models
    ]

    @dg.multi_asset(
        name=group.name,
        specs=specs,
        check_specs=prediction_check_specs(group.models, partitions_def),
        can_subset=True,
        partitions_def=partitions_def,
        retry_policy=retry_policy,
        pool=PROCESSING_POOL,
        backfill_policy=PREDICTIONS_BACKFILL,
        description=f"Scores {', '.join(group.models)} on `{group.dataset}` data in one "
        f"pass per day ({group.instance_type}).",
    )
    def score(context: dg.AssetExecutionContext, storage: ObjectStorage,
              job_store: JobStore, processing: ProcessingBackend):
        step = ScoringStep(context, registry, group,
                           StepResources(storage, job_store, processing))
        yield from step.run()

    return score

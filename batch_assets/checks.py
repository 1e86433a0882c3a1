"""Asset checks on predictions, read back from storage (not from what the job said)."""

import dagster as dg

from batch_assets.model_pointer import ModelNotTrainedError, read_current_model
from batch_assets.partitions import prediction_partitions, split_prediction_key
from batch_assets.predictions import ASSET_NAME as PREDICTIONS
from batch_assets.registry import Registry
from batch_assets.scoring_plan import MissingInputError, list_inputs, tally_partition
from resources.storage import ObjectStorage

COMPLETE_CHECK = "predictions_complete"


def build_completeness_check(registry: Registry) -> dg.AssetChecksDefinition:
    partitions_def = prediction_partitions(registry)

    @dg.asset_check(
        asset=PREDICTIONS,
        name=COMPLETE_CHECK,
        blocking=True,
        partitions_def=partitions_def,
        description="Every input file of the day has an output and a manifest from the "
        "current model version, with rows in == rows out.",
    )
    def predictions_complete(
        context: dg.AssetCheckExecutionContext, storage: ObjectStorage
    ) -> dg.AssetCheckResult:
        day, model = split_prediction_key(partitions_def, context.partition_key)
        spec = registry.get(model)
        try:
            version = read_current_model(storage, model).version
            inputs = list_inputs(storage, spec.dataset, day)
        except (ModelNotTrainedError, MissingInputError) as exc:
            return dg.AssetCheckResult(passed=False, description=str(exc))
        tally = tally_partition(storage, model, day, inputs, version)
        return dg.AssetCheckResult(
            passed=tally.complete,
            description=None if tally.complete else (
                f"{len(tally.pending)} of {len(inputs)} input files lack a valid output"
            ),
            metadata={
                "input_files": len(inputs),
                "complete_files": len(tally.done),
                "missing_files": len(tally.pending),
                "rows_in": tally.rows_in,
                "rows_out": tally.rows_out,
                "model_version": version,
                "problems": dg.MetadataValue.json(
                    {r.relative: tally.problems[r.relative] for r in tally.pending[:20]}
                ),
            },
        )

    return predictions_complete

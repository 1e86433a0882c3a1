"""The asset graph: the external data assets, ``trained_model`` (training and import),
and one ``predictions/<model>`` asset per model, scored per dataset-day by one step,
with the metadata each materialization carries."""

"""What a step works out around its processing job: where every key lives
(``layout``), which files are done (``tally``, from ``day_manifests``), which models
share a job (``scoring_groups``), the current version (``model_pointer``) and whether
the registry still matches it (``registry_match``), and how many instances
(``sizing``)."""

"""Orchestration: partitions, assets, checks and Definitions of the batch inference pipeline."""

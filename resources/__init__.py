"""Dagster resources: object storage, job store, and processing backends.

Each concern has one interface and an embedded local implementation; the AWS
implementations plug in behind the same interfaces.
"""

"""The Dagster layer: resource, op and asset factories, Parquet IO, checks, schedules."""

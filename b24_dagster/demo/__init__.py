"""The runnable demo: `python -m b24_dagster.demo` materializes the pipeline of
`definitions.py` (Bitrix24 -> Parquet -> dbt -> Bitrix24) against a local emulator.

Not part of the library: the library's `Bitrix24Resource` never starts an emulator; the demo
does (`_local_portal`).
"""

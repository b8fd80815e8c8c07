"""Dagster Components of b24-dagster, registered for `dg` through the
`dagster_dg_cli.registry_modules` entry point (`dg list components` shows them)."""

from b24_dagster.components._bitrix24 import (
    Bitrix24BatchWrite,
    Bitrix24Component,
    Bitrix24Export,
    shared_resources,
)

__all__ = ["Bitrix24BatchWrite", "Bitrix24Component", "Bitrix24Export", "shared_resources"]

"""b24-dagster: move data in and out of Bitrix24 through the REST batch facility.

The client part (`Bitrix24Client` and its results and errors) imports neither dagster nor
pandas; the Dagster names are loaded on first attribute access.
"""

from __future__ import annotations

__version__ = "0.1.0"

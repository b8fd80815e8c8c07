"""A local Bitrix24 portal on a real socket, for tests, benchmarks and the demo.

Start it in-process::

    from b24_dagster.emulator import PortalEmulator, PortalSettings

    with PortalEmulator(PortalSettings(rate=0)) as emu:
        print(emu.webhook_url)          # http://127.0.0.1:PORT/rest/1/<code>/

or as a program: ``python -m b24_dagster.emulator --port 0 --seed-deals 1000``, which prints
its webhook URL as the first line of stdout. See ``docs/emulator.md``.
"""

from ._faults import FAULT_KINDS as FAULT_KINDS
from ._faults import FaultRule as FaultRule
from ._faults import FaultSettings as FaultSettings
from ._portal import Portal as Portal
from ._portal import PortalRequest as PortalRequest
from ._portal import PortalResponse as PortalResponse
from ._requestlog import RequestRecord as RequestRecord
from ._server import EmulatorProcess as EmulatorProcess
from ._server import PortalEmulator as PortalEmulator
from ._server import start_subprocess as start_subprocess
from ._settings import PortalSettings as PortalSettings

__all__ = [
    "FAULT_KINDS",
    "EmulatorProcess",
    "FaultRule",
    "FaultSettings",
    "Portal",
    "PortalEmulator",
    "PortalRequest",
    "PortalResponse",
    "PortalSettings",
    "RequestRecord",
    "start_subprocess",
]

"""pytest fixtures for the Bitrix24 portal emulator (registered through the pytest11 entry point)."""

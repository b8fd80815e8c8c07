"""pandas DataFrames to Bitrix24 commands, and results back (the only module that knows pandas)."""

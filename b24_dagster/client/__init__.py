"""The Bitrix24 webhook client and the chunked-batch engine (no Dagster, no pandas)."""

"""A local Bitrix24 portal on a real socket, for tests, benchmarks and the demo."""

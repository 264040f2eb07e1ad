"""The test suite (a package, so `tests/collect` never shadows the `collect` package)."""

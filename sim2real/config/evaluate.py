"""`evaluate:` and `store:` sections."""

from __future__ import annotations

from pydantic import Field

from sim2real.config.base import Section


class EvaluateConfig(Section):
    batch_size: int = Field(16, ge=1)
    hardest_k: int = Field(8, ge=1)


class StoreConfig(Section):
    path: str = "data/store/sim2real.duckdb"  # one DuckDB file; env SIM2REAL_STORE overrides

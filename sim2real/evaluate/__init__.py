"""Gap evaluation: metrics, domain and latent statistics, test-time baselines, the DuckDB store, the report.

Entry points: `sim2real.evaluate.stage:gap_report` (the stage), `sim2real.evaluate.cli` (`sim2real gap`,
`sim2real evaluate`). Modules import torch lazily where they can, so `sim2real gap` stays quick.
"""

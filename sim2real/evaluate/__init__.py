"""Gap evaluation: metrics, domain and latent statistics, test-time baselines, the DuckDB store, the report.

Entry points: `sim2real.evaluate.stage:gap_report` (the stage), `sim2real.evaluate.cli` (`sim2real gap`,
`sim2real evaluate`). Modules import torch lazily where they can, so `sim2real gap` stays quick.

`data` holds what the others share (split names, ImageSet, ModelEntry, Evaluator, Point, the baseline
source-only rule); `headline` the headline figures; `report` the HTML and plots; `stage` the steps.
"""

"""Fine-tuning strategies: which parts of the model train, at which learning rate, at which step.

A model has three parts: `encoder`, `decoder` and `head` (smp's segmentation head). A strategy says, for
every step, which parts train; frozen parts get `requires_grad=False` *and* eval-mode normalization
layers, so their weights and running statistics stay bit-identical.

| name | trains | notes |
|---|---|---|
| full | everything | one learning rate |
| frozen_encoder | decoder + head | encoder frozen |
| head_only | head | the head is re-initialised first |
| discriminative | everything | encoder lr = `encoder_lr_factor` x head lr |
| gradual | head + decoder, then the encoder in `unfreeze_groups` chunks, deepest first | equal phases |

Example:
    >>> strat = get_strategy("gradual", steps=100, unfreeze_groups=3)
    >>> strat.prepare(model, seed=0); groups = strat.param_groups(model, lr=5e-4)
    >>> strat.apply(model, step=0)  # after model.train(), before the forward pass
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from sim2real.train.models import reset_head


def _owners(module: nn.Module) -> list[nn.Module]:
    """Modules that directly own parameters or buffers, in definition order (input to output)."""
    return [m for m in module.modules()
            if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))]


def model_units(model: nn.Module, encoder_chunks: int = 1) -> dict[str, list[nn.Module]]:
    """The model's freezable units: encoder chunk(s) (shallow to deep), decoder, head."""
    enc = _owners(model.encoder)
    k = max(1, min(encoder_chunks, len(enc)))
    units: dict[str, list[nn.Module]] = {}
    for i in range(k):
        units[f"encoder.{i}" if k > 1 else "encoder"] = enc[i * len(enc) // k:(i + 1) * len(enc) // k]
    units["decoder"] = _owners(model.decoder)
    units["head"] = _owners(model.segmentation_head)
    return units


@dataclass
class Strategy:
    """A fine-tuning strategy (see the module table). `steps` is the run's length (for gradual phases)."""

    name: str
    steps: int = 1
    encoder_lr_factor: float = 0.1
    unfreeze_groups: int = 3

    def prepare(self, model: nn.Module, seed: int) -> None:
        """One-off changes before training (head_only: a fresh head)."""
        if self.name == "head_only":
            reset_head(model, seed)

    def param_groups(self, model: nn.Module, lr: float) -> list[dict]:
        """Optimizer groups: encoder and the rest (discriminative gives the encoder a smaller lr)."""
        enc_ids = {id(p) for p in model.encoder.parameters()}
        enc = [p for p in model.parameters() if id(p) in enc_ids]
        rest = [p for p in model.parameters() if id(p) not in enc_ids]
        enc_lr = lr * self.encoder_lr_factor if self.name == "discriminative" else lr
        return [{"params": enc, "lr": enc_lr, "name": "encoder"}, {"params": rest, "lr": lr, "name": "head"}]

    def phase_length(self) -> int:
        return max(1, self.steps // (self.unfreeze_groups + 1))

    def _units(self, model: nn.Module) -> dict[str, list[nn.Module]]:
        # the module walk costs ~6 ms on lite0: do it once per model, not once per step
        cached = getattr(self, "_unit_cache", None)
        if cached is None or cached[0] is not model:
            cached = (model, model_units(model, self.unfreeze_groups if self.name == "gradual" else 1))
            self._unit_cache = cached
            self._applied: dict[str, bool] | None = None
        return cached[1]

    def trainable_units(self, model: nn.Module, step: int) -> dict[str, bool]:
        """Unit name -> trains at this step."""
        units = self._units(model)
        if self.name in ("full", "discriminative"):
            return dict.fromkeys(units, True)
        if self.name == "frozen_encoder":
            return {u: not u.startswith("encoder") for u in units}
        if self.name == "head_only":
            return {u: u == "head" for u in units}
        # gradual: phase 0 = head + decoder; phase p unfreezes the p deepest encoder chunks
        chunks = self.unfreeze_groups
        phase = min(step // self.phase_length(), chunks)
        out = {}
        for u in units:
            if u.startswith("encoder"):
                idx = int(u.split(".")[1]) if "." in u else 0
                out[u] = idx >= chunks - phase
            else:
                out[u] = True
        return out

    def apply(self, model: nn.Module, step: int) -> dict[str, bool]:
        """Freeze / unfreeze for this step; call right after `model.train()`."""
        units = self._units(model)
        plan = self.trainable_units(model, step)
        if plan != self._applied:
            for name, modules in units.items():
                for m in modules:
                    for p in m.parameters(recurse=False):
                        p.requires_grad_(plan[name])
            self._applied = plan
        for name, modules in units.items():
            if not plan[name]:
                for m in modules:
                    m.eval()  # frozen normalization layers keep their running statistics
        return plan


STRATEGIES = ("full", "frozen_encoder", "head_only", "discriminative", "gradual")


def get_strategy(name: str, steps: int = 1, encoder_lr_factor: float = 0.1, unfreeze_groups: int = 3) -> Strategy:
    """The strategy called `name` (one of `STRATEGIES`)."""
    if name not in STRATEGIES:
        raise ValueError(f"finetune.strategy: unknown strategy {name!r}; choose one of {list(STRATEGIES)}")
    return Strategy(name, steps=steps, encoder_lr_factor=encoder_lr_factor, unfreeze_groups=unfreeze_groups)

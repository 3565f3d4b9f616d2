"""Encoder stages of a segmentation model, and the model with stages 1..k frozen.

An encoder *stage* is what produces one feature level (one output of the encoder, stride 2, 4, 8,
...): for a timm encoder (`tu-...`) the modules up to and including each `feature_info` module, for
an smp encoder its `get_stages()`. `StagesFrozen(model, k)` is the same network (same weights, same
state-dict keys) with stages 1..k frozen: their parameters get `requires_grad=False` and their
normalization layers stay in eval mode through `train()`, so weights *and* running statistics stay
bit-identical while the rest trains. Its `encoder` shows the training loop only the trainable
stages, so any fine-tuning strategy of `sim2real.train` (e.g. `full`) trains exactly those.

Example:
    >>> frozen = StagesFrozen(model, k=2)        # stages 1 and 2 frozen
    >>> train(frozen, job, few_shot, {"real": val}, work_dir)
"""

from __future__ import annotations

from torch import nn

from sim2real.train.models import SegModel

__all__ = ["encoder_stages", "StagesFrozen", "owners"]


def owners(module: nn.Module) -> list[nn.Module]:
    """Modules that directly own parameters or buffers, in definition order."""
    return [m for m in module.modules()
            if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))]


def encoder_stages(model: SegModel) -> list[list[nn.Module]]:
    """The parameter-owning modules of each encoder stage, shallow (stage 1) to deep.

    Raises:
        ValueError: for an encoder whose stages cannot be told apart (neither timm's `feature_info`
            nor smp's `get_stages`).
    """
    enc = model.encoder
    timm_model = getattr(enc, "model", None)
    info = getattr(timm_model, "feature_info", None)
    if info is not None:
        return _timm_stages(timm_model, info.module_name())
    if hasattr(enc, "get_stages"):
        stages = enc.get_stages()
        stages = list(stages.values()) if isinstance(stages, dict) else list(stages)
        seen: set[int] = set()
        out = []
        for s in stages[1:] if len(stages) > 1 else stages:  # smp's stage 0 is the identity
            mods = [m for m in owners(s) if id(m) not in seen] if isinstance(s, nn.Module) else \
                [m for part in s for m in owners(part) if id(m) not in seen]
            seen |= {id(m) for m in mods}
            out.append(mods)
        return [s for s in out if s]
    raise ValueError(f"cannot split encoder {type(enc).__name__} into stages (no timm feature_info, no get_stages)")


def _timm_stages(timm_model: nn.Module, feature_modules: list[str]) -> list[list[nn.Module]]:
    named = list(timm_model.named_modules())
    last = []
    for fm in feature_modules:  # index of the last module inside each feature module's subtree
        inside = [i for i, (n, _) in enumerate(named) if n == fm or n.startswith(fm + ".")]
        last.append(max(inside))
    stages: list[list[nn.Module]] = [[] for _ in feature_modules]
    own = {id(m) for m in owners(timm_model)}
    for i, (_, m) in enumerate(named):
        if id(m) not in own:
            continue
        s = next((j for j, end in enumerate(last) if i <= end), len(last) - 1)
        stages[s].append(m)
    return stages


class _Modules(nn.Module):
    """A view over some modules (for `StagesFrozen.encoder`); never registered on the model."""

    def __init__(self, modules: list[nn.Module]):
        super().__init__()
        self.parts = nn.ModuleList(modules)


class StagesFrozen(SegModel):
    """`model`'s network with encoder stages 1..k frozen (k = 0: nothing frozen).

    Args:
        model: a `SegModel`; the weights are shared, not copied.
        k: how many encoder stages, counted from the input, to freeze.
    """

    def __init__(self, model: SegModel, k: int):
        super().__init__(model.net)
        self.info = getattr(model, "info", {})
        stages = encoder_stages(model)
        if not 0 <= k <= len(stages):
            raise ValueError(f"transfer.frozen: k={k} is not in 0..{len(stages)} "
                             f"(the encoder {type(model.encoder).__name__} has {len(stages)} stages)")
        frozen = [m for s in stages[:k] for m in s]
        ids = {id(m) for m in frozen}
        trainable = [m for m in owners(model.encoder) if id(m) not in ids]
        # plain attributes, not submodules: the state dict stays that of a SegModel
        object.__setattr__(self, "frozen_modules", tuple(frozen))
        object.__setattr__(self, "_view", _Modules(trainable))
        self.k, self.num_stages = k, len(stages)
        for m in frozen:
            for p in m.parameters(recurse=False):
                p.requires_grad_(False)

    @property
    def encoder(self) -> nn.Module:
        """The trainable encoder stages only (what a fine-tuning strategy sees and trains)."""
        return self._view

    def train(self, mode: bool = True) -> StagesFrozen:
        super().train(mode)
        for m in self.frozen_modules:
            m.eval()  # frozen normalization layers keep their running statistics
        return self

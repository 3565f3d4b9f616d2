"""Checkpoints: atomic writes, weights-only loads, exact resume.

A checkpoint is a dict of tensors and plain values only (model, optimizer and scheduler state, step,
RNG states, params, history), so `torch.load(..., weights_only=True)` reads it and a file carrying any
other pickle payload is refused instead of executed. Writes go to a temp file in the same folder and are
renamed into place, so a kill mid-write leaves the previous checkpoint intact.

Example:
    >>> save_checkpoint(path, {"model": model.state_dict(), "step": 10, "params": cfg.to_dict()})
    >>> model, info = load_model(path)  # eval mode; info["params"], info["step"], info["init"]
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = "sim2real-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, foreign, unsafe to unpickle or from another format."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` atomically (temp file + fsync + rename) with the format tag added."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; refuse anything else with a clear error."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({err.strerror or err})") from None
    # torch.save writes a zip archive (PK..); the legacy format is a pickle (protocol byte 0x80).
    # Anything else (text, CSV, dvc.lock, random bytes) would reach the unpickler and fail with
    # KeyError / IndexError, so name it here.
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        kind = "empty file" if not head else "text" if _looks_like_text(path) else "unknown binary data"
        raise CheckpointError(f"{path}: not a torch checkpoint ({kind}; expected a file written by torch.save)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: refused: the file holds a pickle payload beyond tensors and plain values, "
            f"which weights-only loading will not execute ({first})") from None
    except Exception as err:  # noqa: BLE001 - any other failure of a damaged file: one named error
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: not a sim2real checkpoint (format {found!r}, expected {FORMAT!r})")
    return state


def _looks_like_text(path: Path) -> bool:
    with open(path, "rb") as f:
        block = f.read(4096)
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def rng_state() -> dict[str, Any]:
    """torch / numpy / python RNG states as tensors and plain values (weights_only-safe)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": _to_plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(_from_plain(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _to_plain(obj: Any) -> Any:
    return [_to_plain(o) for o in obj] if isinstance(obj, tuple | list) else obj


def _from_plain(obj: Any) -> Any:
    return tuple(_from_plain(o) for o in obj) if isinstance(obj, list) else obj


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (checkpoints never carry the `module.` prefix)."""
    return model.module if hasattr(model, "module") else model


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint was trained as and load its weights (weights-only).

    Args:
        path: a `model.pt` written by the pretrained_model / finetuned_model / real_only_model stages.
        device: where to put the model.

    Returns:
        (model in eval mode, info) with info holding at least "params" (the config dict it was trained
        with), "stage", "step" and "init" (what its weights started from), plus "metrics" when present.
    """
    from sim2real.config.train import ModelConfig
    from sim2real.train.models import create_model

    state = read_checkpoint(path)
    for key in ("model", "params", "stage", "step", "init"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint lacks {key!r}")
    model_cfg = ModelConfig.model_validate(state["params"]["model"]).model_copy(
        update={"encoder_weights": None})  # the weights come from the file, never from a source
    model = create_model(model_cfg)
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit model {model_cfg.arch}/{model_cfg.encoder}: "
                              f"{str(err).splitlines()[0]}") from None
    model.to(device).eval()
    info = {k: v for k, v in state.items() if k not in ("model", "optimizer", "scheduler", "rng", "format")}
    return model, info

"""Base class for validated config sections: unknown keys and wrong types are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A params.yaml section. Unknown keys are rejected, values are type-checked."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

"""Input hygiene shared by every route: request models that forbid unknown fields and NUL
characters (which no database column can hold), and form field types with the same rules."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form
from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator


def _has_nul(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if depth > 20:
        return False
    if isinstance(value, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


class StrictModel(BaseModel):
    """Base of every request body: unknown fields and NUL characters are refused (422)."""

    model_config = ConfigDict(extra="forbid", str_max_length=10_000)

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("NUL characters are not allowed")
        return data


FormText = Annotated[str, Form(max_length=10_000), AfterValidator(no_nul)]

"""A sample: one API call, attributed to its endpoint, case and test."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .usage import Usage

# Call kinds that are samples: generation calls. count_tokens generates nothing.
SAMPLE_KINDS = frozenset({"messages", "batch", "chat", "responses"})


@dataclass(frozen=True)
class Sample:
    endpoint: str
    case_id: str
    test_id: str
    index: int  # order of the call within its test
    model: str
    usage: Usage
    provider: str = "anthropic"
    batch: bool = False
    recounted: bool = False  # input tokens re-counted with count_tokens
    input_only: bool = False  # counted, never generated: output not measured
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data, so xdist workers can ship samples to the controller."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        return cls(**{**data, "usage": Usage(**data["usage"])})


@dataclass
class CaseRun:
    """What happened to one case of an endpoint during the run."""

    endpoint: str
    case_id: str
    test_id: str
    outcome: str = "passed"  # passed | failed | skipped
    errors: list[str] = field(default_factory=list)
    recorders: list[str] = field(default_factory=list)  # who served its calls (capture.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseRun:
        return cls(**data)

"""A Finding: one problem with a dataset, in plain words, with the files concerned and the
one-click fix that solves it (if any). Written by core/data/validate.py, copy_findings.py and
groups.py; shown by the Data page and `latih data check`."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Finding:
    code: str
    severity: str  # "error" blocks training, "warning" should be looked at, "info" is for the record
    message: str  # a core.i18n.Msg (a str with its catalogue key): pages show it in their language
    files: list[str] = field(default_factory=list)
    fix: str | None = None


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)

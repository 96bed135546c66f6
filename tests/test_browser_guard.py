"""The browser tests' guard: where Chromium is missing they skip on a developer's machine and
fail in CI (setup installs it there), so a broken CI setup cannot pass as skipped tests."""
from __future__ import annotations

import pytest

try:
    import e2e_helpers as h  # tests/ is on sys.path (pytest's default import mode)
except ImportError:
    from tests import e2e_helpers as h


def test_missing_browser_fails_in_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setattr(h, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-chromium is missing"):
        h.need_browser()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no-chromium is missing"):
        h.need_browser()

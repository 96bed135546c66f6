"""Browser journey for issue 8: choose a group pattern on the Data page and see the preview of
the groups; then the Evaluate page's Estimate shows the cross-validation figures and the
learning curve (computed in a background process, polled by the page).

Same setup as test_e2e_browser.py: the README's launch command on a free loopback port,
Debian's Chromium through Playwright, screenshots in test-artifacts/.
"""
from __future__ import annotations

import time

import pytest

try:
    import e2e_helpers as h  # tests/ is on sys.path (pytest's default import mode)
except ImportError:
    from tests import e2e_helpers as h

from tests.test_e2e_browser import _no_traceback, _page_url, _text, app  # noqa: F401 (the app fixture)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1500)]

PATTERN = r"(\d)$"  # the last digit of leaf_07 -> 10 groups of 9 photos across the 3 classes
ESTIMATE_TIMEOUT = 900


def test_groups_preview_and_estimate(app):  # noqa: F811
    from playwright.sync_api import sync_playwright

    en = h.catalogue("en")
    base = app["url"]
    with sync_playwright() as pw:
        browser = h.launch(pw)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        page.goto(base)
        h.wait_idle(page, timeout=120)
        h.keyed(page, "home_sample").get_by_text(en["sample.leaf"], exact=True).click()
        h.wait_idle(page)
        h.click_key(page, "home_start_sample")
        page.wait_for_url("**/data**", timeout=60_000)
        h.wait_idle(page, timeout=300)

        # ---- Data: a regular expression, its preview, then use it ---------------------------
        assert en["groups.title"] in _text(page)
        h.choose(page, "groups_kind", en["groups.kind.regex"])
        h.wait_idle(page)
        box = h.keyed(page, "groups_regex", "input")
        box.fill(PATTERN)
        box.press("Enter")
        h.wait_idle(page)
        deadline = time.monotonic() + 60
        while en["groups.n_alone"] not in _text(page) and time.monotonic() < deadline:
            time.sleep(0.5)
        h.wait_idle(page)
        h.shot(page, "data-groups-preview")
        _no_traceback(page, "data groups")
        text = _text(page)
        assert en["groups.n_groups"] in text and en["groups.n_alone"] in text, text[-2000:]
        metrics = [m.inner_text() for m in page.locator('[data-testid="stMetricValue"]').all()]
        assert "10" in metrics and "90" in metrics, metrics  # 10 groups, all 90 photos grouped
        # the preview table of groups (a data grid: its cells are drawn, so count the grids)
        assert page.locator('[data-testid="stDataFrame"]').count() >= 2  # the groups and the split
        h.click_key(page, "groups_apply")
        deadline = time.monotonic() + 90
        while h.keyed(page, "groups_apply").count() and time.monotonic() < deadline:
            time.sleep(0.5)
        h.wait_idle(page)
        assert not h.keyed(page, "groups_apply").count()  # saved: nothing left to apply

        # ---- Evaluate: the estimate, from the photos alone --------------------------------
        page.goto(_page_url(base, page, "evaluate"))
        h.wait_idle(page, timeout=180)
        assert en["estimate.title"] in _text(page)
        h.click_key(page, "estimate_start")
        deadline = time.monotonic() + ESTIMATE_TIMEOUT
        while time.monotonic() < deadline and not h.keyed(page, "estimate_curve_chart").count():
            assert "estimate stopped" not in _text(page) and "failed" not in _text(page).lower()
            time.sleep(1)
        h.wait_idle(page, timeout=120)
        h.shot(page, "evaluate-estimate")
        _no_traceback(page, "evaluate estimate")
        text = _text(page)
        assert page.locator('[data-testid="stTable"]').count() >= 2  # the scores and the recall per class
        assert "90 photos in 10 groups, 5 folds × 3 repeats" in text
        for name in ("estimate.metric.accuracy", "estimate.metric.balanced_accuracy", "estimate.metric.auc"):
            assert en[name] in text
        for cls in ("early_blight", "late_blight", "healthy"):
            assert cls in text  # recall per class
        assert "From fold to fold the accuracy went from" in text and "%" in text
        chart = h.keyed(page, "estimate_curve_chart")
        assert chart.locator(".scatterlayer .trace").count() >= 2  # measured points and the fitted curve
        assert ("accuracy would likely rise by" in text) or ("More photos are unlikely to help much" in text)
        browser.close()

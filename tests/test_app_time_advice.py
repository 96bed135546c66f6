"""Model page: times from this computer's measured speed (ui/time_advice over core.time_estimate)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"
EN = json.loads((REPO / "assets" / "i18n" / "en.json").read_text(encoding="utf-8"))
SIZE, BATCH = 64, 4  # a real, small measurement: seconds, not minutes

pytestmark = pytest.mark.usefixtures("navigation_like_a_running_server")


def _model_page(project_id: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.query_params.update(project=project_id)
    at.run()
    at.switch_page("pages/model.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _seconds(shown: str) -> int:
    """'1m 05s' / '1h 02m' / '12s' (ui.components.fmt_seconds) -> seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", shown))


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning") for e in getattr(at, kind))


def test_model_page_says_rough_until_measured_then_the_measured_times(make_dataset, workspace):
    from core import machine_speed
    from core.data.scan import scan
    from core.time_estimate import estimate
    from ui import state
    from ui.model_info import build_config

    # 120 photos: enough that training photos, not the weight writes of 15 head epochs, decide
    # which strategy costs more (with 20, a head epoch's two writes could outweigh 4 tuned epochs)
    project = state.new_project("Speed", data_path=str(make_dataset(("a", "b"), n=60, size=(96, 80))),
                                source_kind="folder", language="en")
    state.change_fields(project, {"settings/image_size": SIZE, "settings/batch_size": BATCH})
    at = _model_page(project["id"])
    assert EN["advice_time.not_measured"] in _texts(at)
    assert any(b.key == "advice_time_measure" for b in at.button)
    assert EN["advice_time.rough"].split("(")[0].strip() in _texts(at)  # the cards say their figure is a guess

    for mode in ("forward", "train"):  # what the button starts in the background, done here in-process
        machine_speed.measure("tf_efficientnet_lite0", SIZE, BATCH, mode, workspace=workspace)
    at = _model_page(project["id"])
    text = _texts(at)
    assert EN["advice_time.not_measured"] not in text
    project = state.load_project(project["id"])
    df = scan(project["data_path"], workspace=workspace)
    config = build_config(project, df)
    fe = estimate(config.replace(strategy="feature-extraction"), df, workspace)
    full = estimate(config.replace(strategy="full", epochs=4), df, workspace)
    assert fe.measured and full.measured and full.seconds > fe.seconds
    headline = [i.value for i in at.info if EN["advice_time.both"].split(",")[0] in i.value]
    assert headline, text
    shown = re.search(r"feature extraction takes about (.+?) and full fine-tuning about (.+?) \(4 epochs\)", headline[0])
    assert shown, headline[0]
    # as the estimate says, full costs more here (both may round to the same shown second)
    assert _seconds(shown.group(2)) >= _seconds(shown.group(1))
    assert EN["advice_time.no_probe"] in headline[0]  # no photo probe yet: says how to know
    assert EN["advice_time.card"].split("{")[0].strip() in text  # the cards show this computer's time

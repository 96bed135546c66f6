"""Model page: time and memory on THIS computer, and accuracy weighed against time.

The times come from core.time_estimate (this machine's measured speed, core.machine_speed);
the measurement runs in a background process the page starts and polls. The weighing of
accuracy against time follows the photo probe (core.advice) when the photos were checked:
it never contradicts that advice, it adds what it costs here.
"""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import streamlit as st

from ui.components import fmt_seconds
from ui.i18n import t

log = logging.getLogger(__name__)


def _workspace():
    from core.workspace import workspace_dir

    return workspace_dir()


@st.cache_data(show_spinner=False, ttl=30)
def estimate_for(config_json: str, df: pd.DataFrame) -> dict | None:
    """core.time_estimate.estimate of a config (as JSON, hashable) on the scanned photos."""
    from core.config import TrainConfig
    from core.time_estimate import estimate

    try:
        return estimate(TrainConfig.from_json(config_json), df, _workspace()).to_dict()
    except Exception as exc:  # an estimate must never break the page
        log.warning("time estimate failed: %s", exc)
        return None


def _configs(config) -> dict[str, Any]:
    """The two choices to weigh: feature extraction, and full fine-tuning with the photo recipe's
    epochs when the photos called for it, else the person's epochs."""
    from core.advice import FINE_TUNE_RECIPE

    full = config.replace(strategy="full")
    if config.strategy != "full":
        full = full.replace(epochs=FINE_TUNE_RECIPE["epochs"], lr=FINE_TUNE_RECIPE["lr"],
                            backbone_lr=FINE_TUNE_RECIPE["backbone_lr"], layer_decay=FINE_TUNE_RECIPE["layer_decay"],
                            warmup_epochs=FINE_TUNE_RECIPE["warmup_epochs"])
    fe = config.replace(strategy="feature-extraction") if config.strategy != "feature-extraction" else config
    return {"feature-extraction": fe, "full": full, "chosen": config}


def measured_estimates(config, df: pd.DataFrame) -> dict[str, dict] | None:
    """{'feature-extraction', 'full', 'chosen'} -> estimate dicts, or None while not measured."""
    from core.time_estimate import needs_measuring

    configs = _configs(config)
    if any(needs_measuring(c, _workspace()) for c in configs.values()):
        return None
    out = {name: estimate_for(c.to_json(), df) for name, c in configs.items()}
    return out if all(out.values()) else None


def section(config, df: pd.DataFrame, photo_advice: dict | None) -> dict | None:
    """The 'Time on this computer' box; returns the estimates shown (None while measuring)."""
    from core import machine_speed

    st.markdown(f"**{t('advice_time.title')}**")
    estimates = measured_estimates(config, df)
    if estimates is None:
        if machine_speed.measuring(config.backbone, config.image_size, config.batch_size, _workspace()):
            _poll(config, df)
            return None
        st.caption(t("advice_time.not_measured"))
        if st.button(t("advice_time.measure_button"), key="advice_time_measure", icon=":material/speed:"):
            try:
                machine_speed.start(config.backbone, config.image_size, config.batch_size, _workspace(),
                                    batches=(48,))
            except Exception as exc:  # the page still works with rough figures
                log.warning("cannot start measuring: %s", exc)
                st.caption(t("advice_time.measure_failed", message=str(exc)))
                return None
            st.rerun()
        return None
    show(estimates, config, photo_advice)
    return estimates


@st.fragment(run_every=2)
def _poll(config, df: pd.DataFrame) -> None:
    from core import machine_speed

    if measured_estimates(config, df) is not None:
        st.rerun()  # the whole page, with the measured times
    if not machine_speed.measuring(config.backbone, config.image_size, config.batch_size, _workspace()):
        st.caption(t("advice_time.measure_failed", message="see cache/machine_speed/*.log"))
        return
    from ui.model_info import display_name

    st.info(t("advice_time.measuring", backbone=display_name(config.backbone)), icon=":material/speed:")


def show(estimates: dict, config, photo_advice: dict | None) -> None:
    import psutil

    fe, full, chosen = estimates["feature-extraction"], estimates["full"], estimates["chosen"]
    lines = [t("advice_time.both", fe=fmt_seconds(fe["seconds"]), full=fmt_seconds(full["seconds"]),
               epochs=_configs(config)["full"].epochs)]
    if photo_advice and photo_advice.get("strategy") == "feature-extraction":
        ratio = max(1, round(full["seconds"] / max(fe["seconds"], 1.0)))
        lines.append(t("advice_time.fe_enough", probe=f"{float(photo_advice['probe']) * 100:.0f}%", ratio=ratio))
    elif photo_advice:
        lines.append(t("advice_time.full_pays", probe=f"{float(photo_advice['probe']) * 100:.0f}%",
                       full=fmt_seconds(full["seconds"])))
    else:
        lines.append(t("advice_time.no_probe"))
    lines.append(t("advice_time.gpu"))
    st.info("\n\n".join(lines), icon=":material/timer:")
    total_mb = psutil.virtual_memory().total / 2**20
    st.caption(t("advice_time.chosen", strategy=t(f"strategy.{config.strategy}"), epochs=config.epochs,
                 time=fmt_seconds(chosen["seconds"]), mb=f"{chosen['memory_mb']:.0f}", total_mb=f"{total_mb:.0f}"))
    if chosen["memory_mb"] > psutil.virtual_memory().available / 2**20:
        st.warning(t("advice_time.memory_short"), icon=":material/memory:")
    if chosen.get("load") is not None:
        st.caption(t("advice_time.measured_at", load=f"{chosen['load']:.1f}"))

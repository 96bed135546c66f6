"""Model: choose the pretrained backbone, how much of it to retrain, and (optionally) the settings."""
from __future__ import annotations

import logging

import streamlit as st

from core.config import AUGMENT_PRESETS, STRATEGIES, TrainConfig, recommend_strategy
from core.errors import LatihError
from ui import estimate_ui, model_info, state, time_advice
from ui.components import frame, guard, next_step, page_header, require_data, require_project
from ui.i18n import say, t

log = logging.getLogger(__name__)

frame()
page_header("model.title", "model.purpose")
project = require_project()
df = require_data(project)
model = dict(project.get("model") or {})
n_train = model_info.train_count(df, project)
n_usable = int(df["readable"].sum())
# The project's TrainConfig from the first choice on: validated on every redraw, so a choice
# that cannot train (e.g. a ViT at another image size) is said here, not by the worker later.
try:
    draft = model_info.draft_config(project)
    problem = None
except LatihError as exc:
    draft, problem = TrainConfig(data_path=str(project.get("data_path") or "")), str(exc)
if problem:
    st.error(t("recipe.invalid", message=problem), icon=":material/error:")

# ---- backbone cards ---------------------------------------------------------------------------
st.subheader(t("model.backbone_title"), help=t("help.backbone"))
st.caption(t("model.backbone_help"))
chosen = model.get("backbone") or model_info.default_backbone()


def backbone_card(spec, container) -> None:
    info = model_info.card_info(spec, n_usable, model.get("strategy") or recommend_strategy(n_train)[0], draft,
                                measured=card_config, df=df)
    with container.container(border=True):
        is_chosen = spec.name == chosen
        st.markdown(f"**{spec.display_name}**" + (" :material/check_circle:" if is_chosen else ""))
        st.caption(t("model.card_family", family=spec.family))
        if info["offline"]:
            st.badge(t("model.offline_ready"), icon=":material/offline_pin:", color="green")
        else:
            st.badge(t("model.needs_download"), icon=":material/cloud_download:", color="orange")
        st.markdown(t("model.card_size", mb=info["size_mb"], params=spec.params_m))
        if info["speed"]:
            st.caption(t("model.card_speed", speed=info["speed"]), help=t("model.cost_help"))
        if spec.notes:
            st.caption(say(spec.notes))
        if st.button(t("model.chosen") if is_chosen else t("model.choose"), key=f"model_choose_{spec.name}",
                     disabled=is_chosen, type="primary" if is_chosen else "secondary"):
            state.change_fields(project, {"model/backbone": spec.name})
            st.rerun()


card_config = None
with guard("config"):
    card_config = model_info.build_config(project, df)  # priced per backbone on this computer when measured

with guard("backbones"):
    specs = model_info.backbones()
    # first the models that work offline (and the chosen one), the rest one click away
    first = [s for s in specs if model_info.offline(s.name) or s.name == chosen]
    rest = [s for s in specs if s not in first]
    cols = st.columns(3)
    for i, spec in enumerate(first):
        backbone_card(spec, cols[i % 3])
    if rest:
        with st.expander(t("model.more_backbones", n=len(rest)), icon=":material/apps:"):
            cols = st.columns(3)
            for i, spec in enumerate(rest):
                backbone_card(spec, cols[i % 3])
    if chosen not in {s.name for s in specs}:
        st.info(t("model.custom_chosen", name=chosen), icon=":material/info:")

# ---- freeze strategy ---------------------------------------------------------------------------
st.subheader(t("model.strategy_title"), help=t("help.freeze"))
recommended, _reason = recommend_strategy(n_train)
photo_advice = estimate_ui.photo_advice(project)  # from the photos themselves, when they were probed
if photo_advice:
    recommended = photo_advice["strategy"]
current = model.get("strategy") or recommended
strategy = st.radio(
    t("model.strategy_label"), STRATEGIES, index=STRATEGIES.index(current),
    format_func=lambda s: t(f"strategy.{s}") + (f"  ({t('model.recommended')})" if s == recommended else ""),
    captions=[t(f"strategy.{s}.help") for s in STRATEGIES], help=t("help.freeze"),
    **state.bind("model_strategy", "model/strategy"),
)
times = None
with guard("time on this computer"):
    times = time_advice.measured_estimates(model_info.build_config(project, df).replace(strategy=strategy), df)
if photo_advice:
    estimate_ui.advice_note(photo_advice, seconds=(times or {}).get(photo_advice["strategy"], {}).get("seconds"))
else:
    st.info(t("model.recommendation", n=n_train, strategy=t(f"strategy.{recommended}"),
              reason=t(f"strategy.{recommended}.why")), icon=":material/recommend:")
    estimate_ui.advice_button(project)
with guard("time on this computer"):
    time_advice.section(model_info.build_config(project, df).replace(strategy=strategy), df, photo_advice)
model["strategy"] = strategy
# The photos recipe (core.advice) goes with the strategy they called for; written field-wise.
wants_recipe = bool(photo_advice) and strategy == recommended
if wants_recipe != bool(model.get("recipe")):
    model["recipe"] = estimate_ui.recipe_for(strategy) if wants_recipe else None
    state.change_fields(project, {"model/strategy": strategy, "model/recipe": model["recipe"]})

# ---- advanced settings ---------------------------------------------------------------------------
with st.expander(t("model.advanced_title"), expanded=False, icon=":material/tune:"):
    st.caption(t("model.advanced_help"))
    c1, c2, c3 = st.columns(3)
    epochs = c1.number_input(t("model.epochs"), 1, 300, draft.epochs,
                             help=t("help.epoch"), **state.bind("model_epochs", "settings/epochs"))
    lr_options = [None, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
    lr_now = draft.lr if draft.lr in lr_options else None
    lr = c2.select_slider(t("model.lr"), lr_options, value=lr_now, help=t("help.learning_rate"),
                          **state.bind("model_lr", "settings/lr"),
                          format_func=lambda v: t("model.auto") if v is None else f"{v:g}")
    batch_options = [4, 8, 16, 32, 64, 128]
    batch = c3.selectbox(t("model.batch_size"), batch_options,
                         index=batch_options.index(draft.batch_size) if draft.batch_size in batch_options else 3,
                         help=t("help.batch_size"), **state.bind("model_batch_size", "settings/batch_size"))
    c4, c5, c6 = st.columns(3)
    size_options = [None, 64, 96, 128, 160, 192, 224, 256, 288, 320, 384]
    size_now = draft.image_size if draft.image_size in size_options else None
    image_size = c4.selectbox(t("model.image_size"), size_options, index=size_options.index(size_now),
                              format_func=lambda v: t("model.auto_size") if v is None else f"{v} px",
                              help=t("help.image_size"), **state.bind("model_image_size", "settings/image_size"))
    augment = c5.selectbox(t("model.augment"), AUGMENT_PRESETS,
                           index=AUGMENT_PRESETS.index(draft.augment),
                           format_func=lambda p: t(f"augment.{p}"), help=t("help.augmentation"),
                           **state.bind("model_augment", "settings/augment"))
    patience = c6.number_input(t("model.patience"), 0, 50, draft.early_stopping_patience,
                               help=t("help.early_stopping"),
                               **state.bind("model_patience", "settings/early_stopping_patience"))
    c7, c8 = st.columns(2)
    weights = c7.radio(t("model.weights"), ["pretrained", "scratch"],
                       index=0 if draft.weights == "pretrained" else 1,
                       format_func=lambda w: t(f"weights.{w}"), help=t("help.pretrained"),
                       horizontal=True, **state.bind("model_weights", "settings/weights"))
    c9, c10 = st.columns(2)
    c9.number_input(t("recipe.head_epochs"), 0, 100, draft.head_epochs, help=t("recipe.head_epochs.help"),
                    disabled=strategy not in ("two-stage", "gradual"),
                    **state.bind("model_head_epochs", "settings/head_epochs"))
    c10.number_input(t("recipe.unfreeze_blocks"), 0, 20, draft.unfreeze_blocks, help=t("recipe.unfreeze_blocks.help"),
                     disabled=strategy != "fine-tune", **state.bind("model_unfreeze_blocks", "settings/unfreeze_blocks"))
    custom = c8.text_input(t("model.custom_backbone"), value="", key="model_custom_backbone",
                           placeholder="resnet18", help=t("help.custom_backbone"))
    if custom.strip() and st.button(t("model.use_custom"), key="model_use_custom"):
        with guard("custom backbone"):
            model_info.check_backbone_name(custom.strip())
            state.change_fields(project, {"model/backbone": custom.strip()})
            st.rerun()

# ---- screening: the class that must not be missed ------------------------------------------------
st.subheader(t("model.screening_title"), help=t("help.screening"))
class_names = sorted(df.loc[df["readable"], "label"].unique().tolist())
positive_options = [None, *class_names]
positive_now = draft.positive_class if draft.positive_class in class_names else None
s1, s2 = st.columns(2)
positive_class = s1.selectbox(t("model.positive_class"), positive_options, index=positive_options.index(positive_now),
                              format_func=lambda c: t("model.no_screening") if c is None else c,
                              help=t("help.positive_class"),
                              **state.bind("model_positive_class", "settings/positive_class"))
target_sensitivity = s2.slider(t("model.target_sensitivity"), 0.80, 0.99,
                               float(draft.target_sensitivity), 0.01, format="%.2f",
                               help=t("help.target_sensitivity"), disabled=positive_class is None,
                               **state.bind("model_target_sensitivity", "settings/target_sensitivity"))
# Each setting is saved by its widget's on_change (state.bind): only the field the person
# changed, and only when this tab is up to date, so a stale tab cannot undo another's change.

with st.expander(t("model.glossary_title"), icon=":material/menu_book:"):
    for term in ("backbone", "freeze", "epoch", "learning_rate", "batch_size", "image_size", "augmentation",
                 "validation", "early_stopping"):
        st.markdown(f"**{t('term.' + term)}**: {t('help.' + term)}")

st.divider()
next_step("train", "model.next")

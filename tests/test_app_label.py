"""The Label page (AppTest, the real app.py), the camera's storage, and the field-mode password.

The model's suggestions run for real: EfficientNet-Lite0 features of small generated photos in
a background thread, a logistic-regression head on them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"
TIMEOUT = 180


pytestmark = pytest.mark.usefixtures("navigation_like_a_running_server")


def _en() -> dict:
    import json

    return json.loads((REPO / "assets" / "i18n" / "en.json").read_text(encoding="utf-8"))


EN = _en()


def _ok(at: AppTest, where: str) -> None:
    assert not at.exception, f"{where}: " + "\n".join(str(e.value) for e in at.exception)


@pytest.fixture
def phone(tmp_path, make_image):
    """24 loose photos: 12 reddish, 12 bluish, in one folder with odd names (as from a phone)."""
    folder = tmp_path / "phone photos"
    for i in range(24):
        tint = (230, 30, 30) if i % 2 == 0 else (30, 30, 230)
        make_image(folder / f"IMG_{i:04d}.jpg", seed=100 + i, size=96, tint=tint)
    return folder


def _truth(path: str) -> str:
    return "red" if int(Path(path).stem.split("_")[1]) % 2 == 0 else "blue"


def _start(phone) -> tuple[AppTest, dict]:
    from ui import labelling, state

    project = state.new_project("Field day", language="en")
    labelling.add_pool_source(project, phone)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(project=project["id"])
    at.run()
    at.switch_page("pages/label.py").run()
    _ok(at, "label page")
    return at, state.load_project(project["id"])


def _current_photo(at: AppTest) -> str:
    images = at.get("image")
    return images[0].proto.imgs[0].caption if images else ""


def test_label_page_keys_undo_suggestions_and_bulk_accept(phone):
    from core import active
    from ui import labelling, state

    before = {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in phone.iterdir()}
    at, project = _start(phone)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[EN["label.n_photos"]] == "24" and metrics[EN["label.n_labelled"]] == "0"
    for name in ("red", "blue"):
        at.text_input(key="label_new_class").input(name)
        at.button(key="label_add_class").click().run()
        _ok(at, "add class")
    labels = labelling.label_log(project)
    assert labels.state().classes == ["red", "blue"]

    # label the photo shown, with the class buttons (keys 1 and 2), until 4 of each
    seen = []
    while min(labels.state().counts().values()) < 4:
        shown = _current_photo(at)
        path = str((phone / shown).resolve())
        seen.append(path)
        at.button(key="label_class_0" if _truth(path) == "red" else "label_class_1").click().run()
        _ok(at, "label")
        assert labels.state().labels.get(path) == _truth(path), "the label went to another photo"
        assert len(seen) < 20
    # a skip and an undo of it
    shown = _current_photo(at)
    at.button(key="label_skip").click().run()
    assert labels.state().status[str((phone / shown).resolve())] == "skipped"
    at.button(key="label_undo").click().run()
    assert str((phone / shown).resolve()) not in labels.state().status

    # suggestions from the background head
    status = active.wait_refresh(labelling.labels_dir(project), timeout=TIMEOUT)
    assert not status["error"], status
    at.run()
    _ok(at, "after suggestions")
    status = active.wait_refresh(labelling.labels_dir(project), timeout=TIMEOUT)
    at.run()
    found = active.read_suggestions(labelling.labels_dir(project))
    assert found["ready"] and len(found["suggestions"]) == 24 - len(labels.state().labels)
    # the page says the suggestions (and so the bulk accept below) come from all the labels so far
    n_labels = len(labels.state().labels)
    assert found["version"] == labelling.labels_version(labels.state()) and found["n_labels"] == n_labels
    assert EN["label.basis"].format(n=n_labels) in [c.value for c in at.caption]
    right = sum(found["suggestions"][p][0] == _truth(p) for p in found["suggestions"])
    assert right / len(found["suggestions"]) >= 0.9, found["suggestions"]
    assert found["cv"]["accuracy"] >= 0.8 and found["curve"]
    accept = at.button(key="label_accept")
    at.slider(key="label_threshold").set_value(0.6).run()
    n_before = len(labels.state().labels)
    at.button(key="label_accept").click().run()
    _ok(at, "accept")
    after = labels.state()
    assert len(after.labels) > n_before and accept is not None
    assert all(after.sources[p] == "suggestion" for p in after.labels if p not in seen)
    expected = {p: c for p, (c, conf) in found["suggestions"].items() if conf >= 0.6}
    assert {p: c for p, c in after.labels.items() if after.sources[p] == "suggestion"} == expected
    # one undo takes the whole bulk accept back
    at.button(key="label_undo").click().run()
    assert len(labels.state().labels) == n_before
    assert not active.wait_refresh(labelling.labels_dir(project), timeout=TIMEOUT)["running"]  # none outlives the test

    # the project trains from labels.csv; the photos were never touched
    project = state.load_project(project["id"])
    assert project["data_path"].endswith("labels.csv")
    from core.data.scan import scan

    assert len(scan(project["data_path"])) == n_before
    assert {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in phone.iterdir()} == before


def test_grid_mode_picker_and_bad_class_name(phone):
    from ui import labelling

    at, project = _start(phone)
    at.text_input(key="label_new_class").input("a/b")
    at.button(key="label_add_class").click().run()
    assert any("slash" in e.value for e in at.error), [e.value for e in at.error]
    at.text_input(key="label_new_class").input("red")
    at.button(key="label_add_class").click().run()
    at.slider(key="label_zoom").set_value(2.0).run()  # the centre, enlarged
    _ok(at, "zoom")
    assert at.get("image")[0].proto.imgs[0].caption.startswith("IMG_")
    at.segmented_control(key="label_mode").set_value("grid").run()
    _ok(at, "grid")
    pickers = [s for s in at.selectbox if s.key and s.key.startswith("label_pick_")]
    assert len(pickers) == 12
    pickers[0].set_value("red").run()
    _ok(at, "grid pick")
    assert list(labelling.label_log(project).state().labels.values()) == ["red"]


def test_camera_photo_into_a_class_and_into_the_pool(tmp_path, make_image):
    from core.data.scan import scan
    from ui import labelling, state

    shot = make_image(tmp_path / "shot.jpg", seed=3, size=120).read_bytes()
    project = state.new_project("Camera", language="en")
    into_class = labelling.save_camera_photo(project, shot, "healthy")
    into_pool = labelling.save_camera_photo(state.load_project(project["id"]), shot, None)
    project = state.load_project(project["id"])
    current = labelling.label_log(project).state()
    assert current.labels == {str(into_class): "healthy"} and current.sources[str(into_class)] == "camera"
    assert str(into_pool) in set(labelling.pool_frame(project)["path"])
    df = scan(project["data_path"])
    assert df["path"].tolist() == [str(into_class)] and df["label"].tolist() == ["healthy"]


def test_class_folder_project_keeps_its_labels_when_camera_photos_join(make_dataset, make_image, tmp_path):
    from core.data.scan import scan
    from ui import labelling, state

    data = make_dataset(("red", "green"), n=5)
    project = state.new_project("Folders", data_path=str(data), source_kind="folder", language="en")
    labelling.save_camera_photo(project, make_image(tmp_path / "s.png", seed=9).read_bytes(), "green", ".png")
    df = scan(state.load_project(project["id"])["data_path"])
    assert df["label"].value_counts().to_dict() == {"green": 6, "red": 5}


def test_field_mode_asks_for_the_password_on_every_page(monkeypatch):
    from core import field

    monkeypatch.setenv(field.PASSWORD_ENV, field.hash_password("right-horse"))
    monkeypatch.setenv(field.URL_ENV, "https://127.0.0.2:8443")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    _ok(at, "gate")
    assert at.title[0].value == EN["field.password_title"]
    assert not [b for b in at.button if b.key == "home_new_project"], "Home must not show before the password"
    at.text_input(key="field_password").input("wrong-horse")
    at.button(key="field_enter").click().run()
    assert any(EN["field.wrong"] in e.value for e in at.error)
    assert at.title[0].value == EN["field.password_title"]
    at.switch_page("pages/data.py").run()
    assert at.title[0].value == EN["field.password_title"], "another page must not open either"
    at.text_input(key="field_password").input("right-horse")
    at.button(key="field_enter").click().run()
    _ok(at, "unlocked")
    assert at.title[0].value != EN["field.password_title"]
    # The caption is Markdown with the address escaped (so it is not turned into a link).
    assert any("https://127.0.0.2:8443" in c.value.replace("\\", "") for c in at.caption)


def test_field_cookie_is_signed_expires_and_ends_with_the_server_run():
    from core import field

    stored = field.hash_password("right-horse")
    token = field.session_token(stored, now=1_000_000)
    assert "right-horse" not in token and stored not in token
    assert field.check_token(token, stored, now=1_000_000 + 3600)
    assert not field.check_token(token, stored, now=1_000_000 + (field.COOKIE_HOURS + 1) * 3600), "expired"
    expires, signature = token.split(".")
    assert not field.check_token(f"{int(expires) + 86400}.{signature}", stored, now=1_000_000), "expiry edited"
    edited = signature[:-1] + ("1" if signature.endswith("0") else "0")  # always a different last character
    assert not field.check_token(f"{expires}.{edited}", stored, now=1_000_000), "signature edited"
    assert not field.check_token(token, field.hash_password("right-horse"), now=1_000_000), \
        "a new `serve --lan` (a new salt) ends the old cookies"
    assert not field.check_token(None, stored) and not field.check_token("garbage", stored)


def test_password_hash_and_certificate(tmp_path):
    from cryptography import x509

    from core import field

    stored = field.hash_password("s3cret-pass")
    assert "s3cret" not in stored
    assert field.check_password("s3cret-pass", stored) and not field.check_password("s3cret-pasS", stored)
    with pytest.raises(field.FieldError):
        field.hash_password("short")
    cert, key = field.ensure_certificate("127.0.0.2")
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    ips = [str(ip) for ip in parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)
           .value.get_values_for_type(x509.IPAddress)]
    assert ips == ["127.0.0.2"]
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert field.ensure_certificate("127.0.0.2") == (cert, key)  # made once


def test_excluded_photos_leave_the_labels_training_source(tmp_path, make_image):
    from core.data.scan import scan
    from ui import labelling, model_info, state

    project = state.new_project("Excl", language="en")
    paths = [labelling.save_camera_photo(state.load_project(project["id"]),
                                         make_image(tmp_path / f"s{i}.png", seed=i).read_bytes(), "leaf", ".png")
             for i in range(3)]
    project = state.update_project(state.load_project(project["id"]), excluded=[str(paths[0])])
    source = model_info.training_data_path(project)
    assert source.endswith(".csv") and source != project["data_path"]
    assert sorted(scan(source)["path"]) == sorted(str(p) for p in paths[1:])

"""The two UI catalogues (English, Bahasa Indonesia) match, and every key the app uses exists."""
from __future__ import annotations

import json
import re
import string
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CATALOGUES = REPO / "assets" / "i18n"
UI_FILES = [REPO / "app.py", *sorted((REPO / "pages").glob("*.py")), *sorted((REPO / "ui").glob("*.py"))]


def _load(lang: str) -> dict[str, str]:
    return json.loads((CATALOGUES / f"{lang}.json").read_text(encoding="utf-8"))


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_catalogues_have_identical_keys():
    en, idn = _load("en"), _load("id")
    assert sorted(en) == sorted(idn), {"only in en": sorted(set(en) - set(idn)),
                                       "only in id": sorted(set(idn) - set(en))}


def test_translations_are_filled_and_use_the_same_placeholders():
    en, idn = _load("en"), _load("id")
    for key, text in en.items():
        assert text.strip() and idn[key].strip(), f"empty text for {key}"
        assert _fields(text) == _fields(idn[key]), f"{key}: placeholders differ ({text!r} vs {idn[key]!r})"


def _used_keys() -> tuple[set[str], set[str]]:
    """(literal keys, prefixes of keys built with f-strings) found in the UI code."""
    en = _load("en")
    sections = {key.split(".")[0] for key in en}
    literal, prefixes = set(), set()
    for path in UI_FILES:
        source = path.read_text(encoding="utf-8")
        # any "section.name" string literal whose section is a catalogue section is a key
        for match in re.finditer(r"""(?<![\w.])["']([a-z_]+\.[a-z0-9_.\-]+)["']""", source):
            key = match.group(1)
            if key.split(".")[0] in sections and not key.endswith((".py", ".json", ".safetensors")):
                literal.add(key)
        for match in re.finditer(r"""\bt\(\s*f["']([a-z_]+\.[a-z0-9_.\-]*)\{""", source):
            prefixes.add(match.group(1))
    return literal, prefixes


def test_every_key_used_in_code_exists():
    en = _load("en")
    literal, prefixes = _used_keys()
    assert len(literal) > 100, "the key scan found suspiciously few keys"
    missing = sorted(k for k in literal if k not in en)
    assert not missing, f"keys used in code but missing from en.json: {missing}"
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in en), f"no key starts with {prefix!r}"


def test_dynamic_key_families_are_complete():
    """Keys built from engine values (strategies, presets, findings, fixes) exist for every value."""
    from core.config import AUGMENT_PRESETS, STRATEGIES

    en = _load("en")
    for s in STRATEGIES:
        for suffix in ("", ".help", ".why"):
            assert f"strategy.{s}{suffix}" in en
    for p in AUGMENT_PRESETS:
        assert f"augment.{p}" in en
    for state in ("queued", "running", "done", "failed", "stopped"):
        assert f"status.{state}" in en
    validate = (REPO / "core" / "data" / "validate.py")
    if validate.exists():
        source = validate.read_text(encoding="utf-8")
        codes = set(re.findall(r'Finding\(\s*"([a-z_]+)"', source))
        fixes = set(re.findall(r'"(drop_[a-z_]+)"', source))
        assert codes, "no finding codes found in core/data/validate.py"
        assert not sorted(c for c in codes if f"finding.{c}" not in en), codes
        assert not sorted(f for f in fixes if f"fix.{f}" not in en), fixes


def test_t_falls_back_and_formats():
    from ui.i18n import t

    assert t("nav.home", lang="id") == _load("id")["nav.home"]
    assert t("data.fixed", lang="en", n=3) == _load("en")["data.fixed"].format(n=3)
    assert t("no.such.key") == "no.such.key"

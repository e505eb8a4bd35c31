from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_input_config, load_sins_config
from pipeline.errors import ConfigError


def test_defaults_load_and_hash_is_stable() -> None:
    a, b = load_sins_config(), load_sins_config()
    assert a.alignment.translation_mm == 3.5 and a.collapse.severe_fraction == 0.5
    assert a.hash == b.hash and len(a.hash) == 64
    assert load_input_config().spacing_mm.min == 0.1


def test_overlay_changes_value_and_hash(tmp_path: Path) -> None:
    overlay = tmp_path / "site.yaml"
    overlay.write_text("alignment:\n  translation_mm: 4.0\n")
    cfg = load_sins_config(overlay)
    assert cfg.alignment.translation_mm == 4.0
    assert cfg.hash != load_sins_config().hash


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alignment:\n  translation_cm: 4\n", "unknown key 'translation_cm'"),
        ("wobble: 1\n", "unknown key 'wobble'"),
        ("alignment:\n  translation_mm: four\n", "expected a number"),
        ("collapse:\n  onset_fraction: 0.7\n", "onset_fraction < severe_fraction"),
        ("alignment: [1, 2\n", "not valid YAML"),
        ("lesion:\n  network_lesion_probability: 0\n", "network_lesion_probability <= 1"),
        ("lesion:\n  network_lesion_probability: 1.5\n", "network_lesion_probability <= 1"),
    ],
)
def test_bad_overlays_are_rejected(tmp_path: Path, text: str, message: str) -> None:
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_sins_config(overlay)


def test_missing_overlay_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_sins_config(tmp_path / "nope.yaml")

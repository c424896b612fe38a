"""The settings table: one place for every setting, torch-free, and docs/settings.md's table made from it."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import SETTINGS, ConfigError, TrainConfig, lookup, markdown_table
from nada_tui.cli._common import add_config_flags, config_changes

SETTINGS_DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def test_importing_the_settings_does_not_import_torch() -> None:
    code = "import sys, engine.config, engine.registry; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_docs_settings_table_is_the_generated_one() -> None:
    assert markdown_table() in SETTINGS_DOC.read_text(encoding="utf-8"), (
        "docs/settings.md's table differs from engine.config.markdown_table(): paste its output there"
    )


def test_every_setting_parses_its_own_formatted_default() -> None:
    for s in SETTINGS.values():
        assert s.parse(s.format(s.default)) == s.default, s.name


def test_text_values_become_typed_values_and_bad_ones_name_the_field() -> None:
    cfg = TrainConfig.parse({"source": "a dog", "target": "a cat", "iterations": "12", "auto_layer_k": "auto",
                             "preview_seeds": "3, 4", "clip_models": "ViT-B/32=0.5, ViT-B/16:1",
                             "templates": "on", "precision": "BF16"})
    assert (cfg.iterations, cfg.auto_layer_k, cfg.preview_seeds, cfg.templates, cfg.precision) == (
        12, None, (3, 4), True, "bf16")
    assert cfg.clip_models == (("ViT-B/32", 0.5), ("ViT-B/16", 1.0))
    for name, value, allowed in (("iterations", "ten", "an integer from 1 to 1000000"), ("batch", "0", "1 to 256"),
                                 ("precision", "fp8", "auto, fp32, tf32 or bf16"),
                                 ("clip_models", "ViT-B/32=heavy", "not a number")):
        with pytest.raises(ConfigError, match=f"^{name}: .*{allowed}") as info:
            TrainConfig.parse({name: value})
        assert info.value.field == name


def test_sweep_keys_and_flags_find_their_setting() -> None:
    assert lookup("iters") is SETTINGS["iterations"]
    assert lookup("global-weight") is lookup("global_weight") is SETTINGS["global_weight"]
    assert lookup("--layer-batch") is SETTINGS["auto_layer_batch"]
    assert lookup("nonsense") is None


def test_cli_flags_come_from_the_table() -> None:
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    flags = {a.option_strings[0] for a in parser._actions if a.option_strings and a.dest.startswith("cfg_")}
    assert flags == {s.flag for s in SETTINGS.values()}
    args = parser.parse_args(["--iters", "7", "--k", "auto", "--clip", "ViT-B/16:0.5", "--no-templates",
                              "--precision", "fp32"])
    assert config_changes(args) == {"iterations": 7, "clip_models": (("ViT-B/16", 0.5),), "templates": False,
                                    "precision": "fp32"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--batch", "many"])

"""Theme files: the shipped ones load, a bad user file is skipped with one report, user themes register."""

from __future__ import annotations

from pathlib import Path

from nada_tui import themes
from nada_tui.app import NadaApp


def test_builtin_themes_load() -> None:
    loaded, failures = themes.load_dir(themes.builtin_theme_dir())
    names = {t.name for t in loaded}
    assert {"nada-dark", "nada-light"} <= names
    assert failures == []
    light = next(t for t in loaded if t.name == "nada-light")
    assert light.dark is False and "loss-total" in light.variables


def test_bad_user_theme_is_reported_once_and_skipped(private_home: Path) -> None:
    d = private_home / "config" / "nada-tui" / "themes"
    d.mkdir(parents=True)
    (d / "broken.toml").write_text("name = 'broken'\nprimary = 'not-a-colour'\n")
    (d / "garbage.toml").write_text("this is [ not toml")
    (d / "mine.toml").write_text(
        'name = "mine"\nprimary = "#ff0000"\ndark = true\n[variables]\nloss-total = "#00ff00"\n'
    )
    loaded, failures = themes.load_all()
    assert "mine" in {t.name for t in loaded}
    assert len(failures) == 2 and any("broken.toml" in f for f in failures)


async def test_app_registers_user_themes_and_notifies_failures(private_home: Path) -> None:
    d = private_home / "config" / "nada-tui" / "themes"
    d.mkdir(parents=True)
    (d / "broken.toml").write_text("name = 'broken'\n")
    (d / "mine.toml").write_text('name = "mine"\nprimary = "#ff0000"\n')
    app = NadaApp(demo=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "mine" in app.available_themes and "nada-light" in app.available_themes
        assert app.theme == "nada-dark"
        warnings = [n for n in app._notifications if "broken.toml" in n.message]
        assert len(warnings) == 1
        app.theme = "nada-light"
        await pilot.pause()
        assert app.theme_variables["loss-total"] == "#c64343"

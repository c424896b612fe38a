"""Theme files: the shipped ones load, a bad user file is skipped with one report, user themes register."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def _contrast_in_256_colours(a, b) -> float:
    """WCAG contrast ratio of two Textual colours as a 256-colour terminal (xterm) shows them."""
    from rich.color import Color as RichColor
    from rich.color import ColorSystem

    def luminance(colour) -> float:
        rgb = RichColor.parse(colour.hex).downgrade(ColorSystem.EIGHT_BIT).get_truecolor()
        lin = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    lo, hi = sorted((luminance(a), luminance(b)))
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("theme", ["nada-dark", "nada-light"])
async def test_panel_borders_stand_out_in_a_256_colour_terminal(theme: str) -> None:
    # Issue 18 defect 11: under the light theme in xterm the panel borders were invisible ($panel-lighten-2
    # became white on light grey).
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(160, 48)) as pilot:
        app.theme = theme
        await pilot.pause()
        chart = app.screen.query_one("#chart")
        border = chart.styles.border_top[1]
        background = chart.background_colors[1]
        assert _contrast_in_256_colours(border, background) >= 2.5, (theme, border.hex, background.hex)

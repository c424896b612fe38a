"""`use_home(mp, root)`: point nada-tui's XDG data, cache, config and state dirs at empty folders under
`root`, for a test (conftest's private_home) or a module's shared session (a module-scoped MonkeyPatch)."""

from __future__ import annotations

from pathlib import Path

import pytest


def use_home(mp: pytest.MonkeyPatch, root: Path) -> Path:
    for name in ("DATA", "CACHE", "CONFIG", "STATE"):
        d = root / name.lower()
        d.mkdir(parents=True, exist_ok=True)
        mp.setenv(f"XDG_{name}_HOME", str(d))
    return root

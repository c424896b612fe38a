"""The run options table: how a run is carried out, not what it learns (the device, how often it saves, the
session's name, how much it prints). Each option is declared once here, as a row of the same kinds as the
training settings (`engine.setting_kinds`), and every command that takes one registers it from this table
(`nada_tui.cli._common.add_run_options`). Torch-free, like the settings table.
"""

from __future__ import annotations

from engine.setting_kinds import FlagSetting, IntSetting, Setting, TextSetting, at_least

DEFAULT_CHECKPOINT_EVERY = 50

RUN_OPTIONS: dict[str, Setting] = {
    s.name: s
    for s in (
        TextSetting("device", "--device", "", "where to run: auto (CUDA when present, else CPU), cpu, cuda or "
                    "cuda:N", "auto, cpu, cuda or cuda:N", default="auto", metavar="DEVICE"),
        IntSetting("checkpoint_every", "--checkpoint-every", "", "save a checkpoint every N steps (0 = only at "
                   "the end), and on Ctrl-C, SIGTERM or SIGHUP", "0 (only at the end) or more", at_least(0),
                   default=DEFAULT_CHECKPOINT_EVERY),
        TextSetting("name", "--name", "", "a display name for the session (default: 'source -> target')",
                    "any text", metavar="TEXT"),
        FlagSetting("quiet", "--quiet", "", "no progress; print only the session id", "on or off", default=False),
    )
}

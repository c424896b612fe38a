"""Quitting the real app in a real pseudo-terminal (how long from the key to the process ending), and the
end of a headless `train`.

The README promises under 2 s on the demo; the bounds here are generous because CI machines are
shared. The measured times are printed (pytest -s shows them). That quitting does not wait for a step
in progress is tested by keys in test_tui_run.py.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import sessions

F5 = b"\x1b[15~"
CTRL_Q = b"\x11"


class Terminal:
    """`nada-tui --demo` on a pty of 120x40; `screen` is everything it has drawn so far, as text."""

    def __init__(self, env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        import fcntl
        import struct
        import termios

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.proc = subprocess.Popen([sys.executable, "-m", "nada_tui", "--demo", "--device", "cpu"],
                                     stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.seen = b""

    def read(self, timeout: float = 0.1) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                self.seen += os.read(self.master, 65536)
            except OSError:  # the child closed the pty
                pass

    def wait_for(self, text: bytes, timeout: float = 90.0) -> None:
        t0 = time.monotonic()
        while text not in self.seen:
            if time.monotonic() - t0 > timeout or self.proc.poll() is not None:
                raise AssertionError(f"{text!r} never appeared; last output: {self.seen[-500:]!r}")
            self.read()
        self.seen = self.seen[self.seen.index(text):]

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def seconds_to_exit(self, limit: float = 30.0) -> float:
        t0 = time.monotonic()
        while self.proc.poll() is None and time.monotonic() - t0 < limit:
            self.read(0.02)
        return time.monotonic() - t0

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def terminal(private_home: Path):
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
    t = Terminal(env)
    yield t
    t.close()


def test_quit_when_idle(terminal: Terminal) -> None:
    terminal.wait_for(b"available: demo")
    terminal.send(CTRL_Q)
    seconds = terminal.seconds_to_exit()
    print(f"idle quit: {seconds:.2f} s")
    assert terminal.proc.returncode == 0
    assert seconds < 4.0


def test_quit_while_training_saves_the_session(terminal: Terminal) -> None:
    terminal.wait_for(b"available: demo")
    terminal.send(F5)
    terminal.wait_for(b"running")
    terminal.wait_for(b"rgb only")  # the layer map's last row: the first selection has run
    time.sleep(1.0)
    terminal.send(CTRL_Q)
    terminal.wait_for(b"Save and quit")
    t0 = time.monotonic()
    terminal.send(b"y")
    seconds = terminal.seconds_to_exit()
    print(f"quit while training: {time.monotonic() - t0:.2f} s")
    assert terminal.proc.returncode == 0
    [info] = sessions.list_sessions()
    assert info.status == "stopped" and info.step >= 1
    assert seconds < 8.0


def test_headless_train_ends_without_the_interpreter_teardown() -> None:
    # An atexit hook stands for the interpreter's teardown (1.4-4.3 s once torch is loaded): it must not
    # run, and every line of the report must still arrive, flushed.
    code = ("import atexit, sys; atexit.register(print, 'TEARDOWN', flush=True); "
            "from nada_tui.__main__ import main; "
            "sys.argv = ['nada-tui', 'train', '--demo', '--iters', '2', '--batch', '1', '--layer-batch', '2', "
            "'--preview-every', '0', '--device', 'cpu']; sys.exit(main())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Finished at step 2/2" in done.stdout and "Sample it with:" in done.stdout
    assert "TEARDOWN" not in done.stdout
    [info] = sessions.list_sessions()
    assert info.status == "finished" and info.step == 2

"""The photos screen: your own photos through a saved session (opened from the sessions screen, `p`).

Pick photos with the file picker (`o`), invert them (F5: a dialog asks the steps and the framing) and
watch each inversion converge: its loss, its step and the current reconstruction. Then each photo shows
as photo | inverted (the frozen generator's render of the found latent) | adapted, side by side, with a
strength blend between the two generators (`<` `>` in 0.1 steps; 0 = frozen, 1 = adapted). F8 stops
between steps; photos that failed are listed with their message. Everything lands in the session's
`photos/` folder (the engine decides), so the photos inverted before are listed when the screen opens.

The screen only asks: the app runs the inversion and the blends on its thread workers (PhotosRequested,
PhotoRenderRequested) and answers with PhotoEvents and PhotoRendered. Every picture is a PixelImage.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static

from nada_tui.messages import PhotoEvents, PhotoRendered, PhotoRenderRequested, PhotosRequested, PhotosStopRequested
from nada_tui.screens.dialogs import Choice, FormDialog
from nada_tui.widgets.file_picker import ImagePicker
from nada_tui.widgets.pixel_image import PixelImage
from nada_tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from engine.sessions import SessionInfo

DEFAULT_STEPS, MAX_STEPS = 500, 100_000  # as engine.photos.invert (not imported here: it brings torch)
_jobs = itertools.count(1)
MARKS = {"waiting": ("·", "dim"), "inverting": ("▸", "bold"), "done": ("✓", "green"), "failed": ("✗", "red"),
         "stopped": ("■", "yellow")}


@dataclass
class PhotoEntry:
    """One photo of the screen's list, as the events told it."""

    path: Path
    state: str = "waiting"  # waiting, inverting, done, failed, stopped
    step: int = 0
    steps: int = 0
    loss: float | None = None
    current: Any = None  # the latest reconstruction (a PIL image)
    result: Any = None  # engine.photos.PhotoResult, once done
    message: str = ""  # why it failed
    label: str = ""  # the name shown, where it is not the file's

    @property
    def name(self) -> str:
        return self.label or self.path.name

    def line(self) -> Text:
        mark, style = MARKS[self.state]
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"{mark} ", style=style)
        t.append(self.name)
        if self.state == "inverting":
            loss = f" · loss {self.loss:.4f}" if self.loss is not None else ""
            t.append(f" · step {self.step}/{self.steps}{loss}", style="dim")
        elif self.state == "done":
            psnr = getattr(self.result, "psnr_db", None)
            t.append(f" · done{f' · {psnr:.1f} dB PSNR' if psnr is not None else ''}", style="dim")
        elif self.state == "failed":
            t.append(f" · {self.message}", style="red")
        elif self.state == "stopped":
            t.append(" · stopped", style="yellow")
        return t


def steps_problem(values: dict[str, str]) -> str | None:
    """What is wrong with the invert dialog's values, or None."""
    for key, label, low in (("steps", "Steps", 1), ("pti", "Pivotal tuning steps", 0)):
        try:
            n = int(values[key].strip())
        except ValueError:
            n = -1
        if not low <= n <= MAX_STEPS:
            return f"{label}: type a whole number from {low} to {MAX_STEPS}."
    return None


def saved_results(session_path: Path) -> list[Any]:
    """The photos a session keeps (its photos/ folder), as engine.photos.PhotoResult (runs on a thread); a
    damaged latent file leaves its photo without figures (its blends then say what is wrong)."""
    from engine.errors import PhotoError
    from engine.photos import PhotoResult, load_latent
    from engine.photos.outputs import file_paths, session_photos_dir
    from engine.sessions import photos

    results = []
    for stem in photos(session_path):
        files = file_paths(session_photos_dir(session_path), stem)
        try:
            meta = load_latent(files["latent"])[1]
        except PhotoError:
            meta = {}
        results.append(PhotoResult(Path(meta.get("photo", stem)), stem, files["aligned"], files["inverted"],
                                   files["adapted"], files["latent"], meta.get("psnr_db"), meta.get("loss")))
    return results


class PhotosScreen(Screen):
    BINDINGS = [
        Binding("escape", "close", "Back", id="photos.close"),
        Binding("o", "pick", "Pick photos", id="photos.pick"),
        Binding("f5", "start", "Invert", id="photos.start"),
        Binding("f8", "stop", "Stop", id="photos.stop"),
        Binding("less_than_sign,minus", "strength(-1)", "Weaker", id="photos.weaker"),
        Binding("greater_than_sign,plus,equals_sign", "strength(1)", "Stronger", id="photos.stronger"),
    ]
    DEFAULT_CSS = """
    PhotosScreen #photo-list { height: auto; max-height: 25%; border: none; }
    PhotosScreen #photo-message { height: auto; padding: 0 1; color: $text-muted; }
    PhotosScreen #photo-message.error { color: $error; }
    PhotosScreen #photo-row { height: 1fr; }
    PhotosScreen .photo-cell { width: 1fr; height: 1fr; margin: 0 1; }
    PhotosScreen .photo-caption { height: 1; width: 100%; text-align: center; }
    PhotosScreen .photo-cell PixelImage { height: 1fr; }
    """

    def __init__(self, info: SessionInfo) -> None:
        super().__init__()
        self.info = info
        self.entries: list[PhotoEntry] = []
        self.strength = 1.0
        self.job: int | None = None  # the inversion running now
        self.stopping = False
        self._picked_from: Path | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar(id="photos-status", classes="status-bar")
        yield OptionList(id="photo-list")
        yield Static("", id="photo-message")
        with Horizontal(id="photo-row"):
            for key, caption in (("original", "photo"), ("inverted", "inverted (frozen)"), ("adapted", "adapted")):
                with Vertical(classes="photo-cell"):
                    yield Static(Text(caption, style="bold"), id=f"caption-{key}", classes="photo-caption")
                    yield PixelImage(id=f"photo-{key}")
        yield Footer()

    def on_mount(self) -> None:
        self._header()
        self._say("o picks photos (the file picker); F5 inverts them through this session.")
        self.query_one(OptionList).focus()
        self._read_saved()

    # ----- what the screen shows ----------------------------------------------------------------
    def _header(self) -> None:
        """The top bar; where it is narrow the counts go first, then the strength, never the title."""
        counts = {s: sum(e.state == s for e in self.entries) for s in MARKS}
        done = f" · {counts['done']} done" if counts["done"] else ""
        failed = Text(f"· {counts['failed']} failed" if counts["failed"] else "", style="red")
        state = "stopping…" if self.stopping else "inverting…"
        segments = [
            (10, Text(" nada-tui ", style="bold reverse")),
            (9, Text(f"Photos: {self.info.name}", no_wrap=True, overflow="ellipsis")),
            (4, Text(f"· {len(self.entries)} photos{done}")),
            (5, failed),
            (6, Text(f"· strength {self.strength:.1f}")),
            (8, Text(f"· {state}" if self.job is not None else "", style="bold")),
        ]
        self.query_one("#photos-status", StatusBar).set_segments([(p, t) for p, t in segments if t.plain])

    def _say(self, text: str, error: bool = False) -> None:
        msg = self.query_one("#photo-message", Static)
        msg.update(text)
        msg.set_class(error, "error")

    def _relist(self) -> None:
        box = self.query_one(OptionList)
        highlighted = box.highlighted
        box.clear_options()
        box.add_options([e.line() for e in self.entries])
        if self.entries:
            box.highlighted = min(highlighted or 0, len(self.entries) - 1)
        self._header()

    def _update_line(self, index: int) -> None:
        self.query_one(OptionList).replace_option_prompt_at_index(index, self.entries[index].line())

    @property
    def selected(self) -> PhotoEntry | None:
        index = self.query_one(OptionList).highlighted
        return self.entries[index] if index is not None and 0 <= index < len(self.entries) else None

    @on(OptionList.OptionHighlighted)
    def _highlighted(self) -> None:
        self._draw()

    def _caption(self, key: str, text: str) -> None:
        self.query_one(f"#caption-{key}", Static).update(Text(text, style="bold"))

    def _picture(self, key: str) -> PixelImage:
        return self.query_one(f"#photo-{key}", PixelImage)

    def _draw(self) -> None:
        """The selected photo's pictures: converging while it inverts, then the three side by side."""
        entry = self.selected
        original, inverted, adapted = (self._picture(k) for k in ("original", "inverted", "adapted"))
        if entry is None:
            for picture in (original, inverted, adapted):
                picture.show(None)
            return
        result = entry.result
        # Before its result, the photo as picked; only a regular file (opening a FIFO would block for good).
        original.show(result.aligned if result is not None else entry.path if entry.path.is_file() else None)
        self._caption("original", "photo (as inverted)" if result is not None else "photo")
        if entry.state == "failed":
            self._say(f"{entry.name}: {entry.message}", error=True)
        if result is None:
            inverted.show(entry.current)
            loss = f" · loss {entry.loss:.4f}" if entry.loss is not None else ""
            self._caption("inverted", f"inverting · step {entry.step}/{entry.steps}{loss}"
                          if entry.state == "inverting" else entry.state)
            adapted.show(None)
            self._caption("adapted", "adapted")
            return
        inverted.show(result.inverted)
        self._caption("inverted", "inverted (frozen)")
        self._show_adapted(entry)

    def _show_adapted(self, entry: PhotoEntry) -> None:
        self._caption("adapted", f"adapted · strength {self.strength:.1f}")
        if self.strength == 1.0:
            self._picture("adapted").show(entry.result.adapted)
        else:  # the app renders the blend on its thread; PhotoRendered brings it
            self.post_message(PhotoRenderRequested(self.info, entry.result.latent, self.strength))

    @on(PhotoRendered)
    def _rendered(self, message: PhotoRendered) -> None:
        entry = self.selected
        if entry is None or entry.result is None or entry.result.latent != message.latent \
                or message.strength != self.strength:
            return  # an answer for a photo or a strength no longer shown
        if message.error is not None:
            self._say(f"Could not render at strength {message.strength:.1f}: {message.error}", error=True)
            return
        self._picture("adapted").show(message.image)

    # ----- photos saved before ------------------------------------------------------------------
    @work(thread=True, group="photos-saved", exit_on_error=False)
    def _read_saved(self) -> None:
        try:
            results = saved_results(self.info.path)
        except Exception as exc:  # an unreadable folder: said, the screen works on
            self.app.call_from_thread(self._say, f"Could not list the saved photos: {exc}", True)
            return
        self.app.call_from_thread(self._saved_read, results)

    def _saved_read(self, results: list[Any]) -> None:
        if not results or self.entries:
            return
        self.entries = [PhotoEntry(Path(r.aligned), "done", result=r, label=r.stem) for r in results]
        self._relist()
        self._say(f"{len(results)} photos inverted before; o picks more, F5 inverts them.")
        self._draw()

    # ----- picking and inverting ----------------------------------------------------------------
    def action_pick(self) -> None:
        if self.job is not None:
            self.notify("Photos are being inverted: wait, or stop them (F8), to pick others.", severity="warning")
            return
        self.app.push_screen(ImagePicker(self._picked_from, "Photos: files or folders of png, jpg, jpeg or webp",
                                         limit=None), self._picked)

    def _picked(self, paths: list[Path] | None) -> None:
        if paths:
            self._picked_from = paths[0].parent
            self._expand(paths)

    @work(thread=True, group="photos-expand", exit_on_error=False)
    def _expand(self, paths: list[Path]) -> None:
        """Folders to the files in them (a file that is no image is kept, to be listed with its message)."""
        from engine.photos.loading import find_photos

        try:
            files = find_photos(list(paths))
        except Exception as exc:  # an unreadable folder: said, nothing picked
            self.app.call_from_thread(self._say, str(exc), True)
            return
        self.app.call_from_thread(self._add_picked, files)

    def _add_picked(self, paths: list[Path]) -> None:
        known = {e.path for e in self.entries}
        fresh = [PhotoEntry(p) for p in paths if p not in known]
        self.entries = [e for e in self.entries if e.state == "done"] + fresh
        self._relist()
        self.query_one(OptionList).highlighted = len(self.entries) - len(fresh)
        self._say(f"{len(fresh)} photos picked; F5 inverts them.")

    def action_start(self) -> None:
        todo = [e for e in self.entries if e.state != "done"]
        if self.job is not None:
            self.notify("Photos are being inverted already.", severity="warning", timeout=3)
            return
        if not todo:
            self.notify("Pick photos first (o).", severity="warning", timeout=4)
            return

        def done(values: dict[str, str] | None) -> None:
            if values is not None:
                align = {"auto": None, "face": True, "crop": False}[values["align"]]
                self._invert(todo, int(values["steps"]), align, int(values["pti"]))

        framing = Choice("align", "Framing", (
            ("auto", "as the model wants (faces aligned for face models)"),
            ("face", "align the face (FFHQ-style)"),
            ("crop", "centre crop, no alignment"),
        ), "auto")
        self.app.push_screen(FormDialog(
            f"Invert {len(todo)} photos through {self.info.name}",
            [("steps", "Steps", str(DEFAULT_STEPS)), framing, ("pti", "Pivotal tuning steps (0: none)", "0")],
            ok="Invert", check=steps_problem), done)

    def _invert(self, todo: list[PhotoEntry], steps: int, align: bool | None, pti: int) -> None:
        self.job, self.stopping = next(_jobs), False
        for entry in todo:
            entry.state, entry.step, entry.steps, entry.loss, entry.current, entry.message = \
                "waiting", 0, steps, None, None, ""
        self._relist()
        self._say(f"Inverting {len(todo)} photos ({steps} steps each); F8 stops between steps.")
        self.post_message(PhotosRequested(self.info, tuple(e.path for e in todo), self.job, steps, align, pti))

    def action_stop(self) -> None:
        if self.job is None:
            self.notify("Nothing is being inverted.", severity="warning", timeout=3)
            return
        self.stopping = True
        self.post_message(PhotosStopRequested(self.job))
        self._say("Stopping after this step; the photos finished so far are kept.")
        self._header()

    def _entry(self, path: Path) -> int:
        """The index of the entry for `path` (a photo found in a picked folder joins the list)."""
        for i, e in enumerate(self.entries):
            if e.path == path:
                return i
        self.entries.append(PhotoEntry(path))
        self._relist()
        return len(self.entries) - 1

    @on(PhotoEvents)
    def _events(self, message: PhotoEvents) -> None:
        from engine.events import InversionProgress, PhotoDone, PhotoFailed

        if message.token != self.job:
            return
        box = self.query_one(OptionList)
        for event in message.events:
            i = self._entry(Path(event.photo))
            entry = self.entries[i]
            match event:
                case InversionProgress():
                    if entry.state != "inverting":
                        entry.state = "inverting"
                        if self.selected is None or self.selected.state != "inverting":
                            box.highlighted = i  # follow the photos being inverted
                    entry.step, entry.steps, entry.loss = event.step, event.steps, event.loss
                    if event.image is not None:
                        entry.current = event.image
                case PhotoDone():
                    entry.state, entry.result = "done", event.result
                case PhotoFailed():
                    entry.state, entry.message = "failed", event.message
            self._update_line(i)
        if message.ended:
            self._ended(message.error)
        self._header()
        self._draw()

    def _ended(self, error: str | None) -> None:
        self.job = None
        for i, entry in enumerate(self.entries):
            if entry.state in ("waiting", "inverting"):
                entry.state = "stopped"
                self._update_line(i)
        failed = [e for e in self.entries if e.state == "failed"]
        if error is not None:
            self._say(f"The inversion stopped: {error}", error=True)
        elif failed:
            self._say(f"{len(failed)} photos failed (listed with their message); the others are in "
                      f"{self.info.path / 'photos'}.", error=True)
        else:
            self._say(f"Done: the pictures are in {self.info.path / 'photos'}. < > change the strength.")

    # ----- strength, leaving --------------------------------------------------------------------
    def action_strength(self, delta: int) -> None:
        strength = round(min(1.0, max(0.0, self.strength + 0.1 * delta)), 1)
        if strength == self.strength:
            return
        self.strength = strength
        self._header()
        entry = self.selected
        if entry is not None and entry.result is not None:
            self._show_adapted(entry)

    def action_close(self) -> None:
        if self.job is not None:
            self.post_message(PhotosStopRequested(self.job))
            self.notify("Stopping the inversion; the photos finished so far are kept.", timeout=4)
        self.app.pop_screen()

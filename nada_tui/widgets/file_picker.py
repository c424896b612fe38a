"""The target-image picker: a folder tree that shows folders and png/jpg/jpeg/webp files, keyboard first.

Keys: up/down move, enter opens a folder (or marks a file), space marks the file or folder under the
cursor (a marked folder means every image in it), backspace shows the parent folder, u uses the marked
ones (or, with none marked, the one under the cursor), escape cancels. The path line at the top jumps to
any folder: type it and press enter. The screen returns the chosen paths through `dismiss`; the form
that opened it decides what to do with them. A modal screen kept among the widgets: it is part of the
target-images field (nada_tui/widgets/target_images.py), and no widget imports from nada_tui.screens.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label
from textual.widgets._tree import TreeNode
from textual.widgets.directory_tree import DirEntry

from engine.target_images import IMAGE_EXTENSIONS, MAX_TARGET_IMAGES

HELP = "space marks · enter opens a folder · backspace: parent folder · u uses the marked · esc cancels"


class MarksChanged(Message):
    """The set of marked paths changed."""


class ImageTree(DirectoryTree):
    """A DirectoryTree of folders and image files whose lines show a mark."""

    BINDINGS = [Binding("space", "mark", "Mark", show=False)]

    def __init__(self, path: Path, marked: dict[Path, None], *, id: str | None = None) -> None:
        super().__init__(path, id=id)
        self.marked = marked  # shared with the screen, in marking order

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        # Runs on DirectoryTree's loader thread: the is_dir() calls never block the UI.
        return [p for p in paths if not p.name.startswith(".")
                and (p.suffix.lower() in IMAGE_EXTENSIONS or p.is_dir())]

    def render_label(self, node: TreeNode[DirEntry], base_style: Style, style: Style) -> Text:
        label = super().render_label(node, base_style, style)
        if node.data is not None and node.data.path in self.marked:
            return Text.assemble(("✓ ", "bold green"), label)
        return label

    def action_mark(self) -> None:
        node = self.cursor_node
        if node is not None and node.data is not None:
            self.toggle(node.data.path)
            node.refresh()

    def toggle(self, path: Path) -> None:
        if path in self.marked:
            del self.marked[path]
        else:
            self.marked[path] = None
        self.post_message(MarksChanged())


TARGETS_TITLE = "Target images: files or folders of png, jpg, jpeg or webp"


class ImagePicker(ModalScreen[list[Path] | None]):
    """Pick image files or folders (target images, photos: `title` says which); dismisses with the chosen
    paths, or None when cancelled. `limit`: more marked than this is said to be refused."""

    DEFAULT_CSS = """
    ImagePicker .dialog { height: 90%; width: 90; }
    ImagePicker #picker-tree { height: 1fr; border: round $primary; }
    ImagePicker #picker-path { margin-bottom: 1; }
    ImagePicker .hint { width: 100%; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", show=False),
        Binding("u", "use", "Use the marked", show=False),
        Binding("backspace", "up", "Parent folder", show=False),
    ]

    def __init__(self, start: Path | None = None, title: str = TARGETS_TITLE,
                 limit: int | None = MAX_TARGET_IMAGES) -> None:
        super().__init__()
        self.title_text, self.limit = title, limit
        folder = (start or Path.cwd()).expanduser()
        while not folder.is_dir() and folder != folder.parent:  # a file, or a path that is gone
            folder = folder.parent
        self.start = folder
        self.marked: dict[Path, None] = {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(str(self.start), id="picker-path", placeholder="a folder; enter shows it", compact=True)
            yield ImageTree(self.start, self.marked, id="picker-tree")
            yield Label("nothing marked", id="picker-marked", classes="dialog-text")
            yield Label(HELP, classes="hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Use (u)", id="picker-use", variant="primary")
                yield Button("Cancel (esc)", id="picker-cancel")

    def on_mount(self) -> None:
        self.tree.focus()

    @property
    def tree(self) -> ImageTree:
        return self.query_one(ImageTree)

    # ----- moving around --------------------------------------------------------------------------
    def show_folder(self, folder: Path) -> None:
        self.tree.path = folder
        self.query_one("#picker-path", Input).value = str(folder)

    @on(Input.Submitted, "#picker-path")
    def _path_typed(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        if path.is_dir():
            self.show_folder(path)
            self.tree.focus()
        elif path.is_file():
            self.tree.toggle(path)
        else:
            self.notify(f"{path} does not exist.", severity="warning", timeout=4)

    def action_up(self) -> None:
        current = Path(self.tree.path)
        if current.parent != current:
            self.show_folder(current.parent)

    @on(DirectoryTree.FileSelected)
    def _file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.tree.toggle(event.path)
        event.node.refresh()

    @on(MarksChanged)
    def _marks_changed(self) -> None:
        n = len(self.marked)
        names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in list(self.marked)[:4])
        more = f" and {n - 4} more" if n > 4 else ""
        text = f"marked: {names}{more}" if n else "nothing marked"
        if self.limit is not None and n > self.limit:
            text += f" (more than {self.limit}: the form will refuse them)"
        self.query_one("#picker-marked", Label).update(text)

    # ----- answers --------------------------------------------------------------------------------
    def action_use(self) -> None:
        chosen = list(self.marked)
        if not chosen:
            node = self.tree.cursor_node
            if node is None or node.data is None:
                self.notify("Mark images or folders first (space).", severity="warning", timeout=4)
                return
            chosen = [node.data.path]
        self.dismiss(chosen)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#picker-use")
    def _use_pressed(self) -> None:
        self.action_use()

    @on(Button.Pressed, "#picker-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

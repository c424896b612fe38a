"""The engine's user-facing errors that would otherwise live in modules importing torch, gathered in one
torch-free module so that the command line and the app can name and catch them without importing torch
(`sessions show`, `models list` start at once). Each message says what is wrong and what to do."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A file that cannot be used as a generator; the message names the file and what was expected."""


class UnknownModel(CheckpointError, KeyError):
    """A model name that is neither in the registry, nor imported, nor a file. A CheckpointError (what
    loading a generator raises) and a KeyError (what the registry's lookups raised before it existed)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown model"


class PromptError(ValueError):
    """A source/target prompt that cannot be used; the message says what to change, `field` which prompt
    ("source" or "target") to change."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class ExportError(ValueError):
    """Bad export/generate arguments; the message says what is allowed."""


class PhotoError(ValueError):
    """A photo that cannot be used (not an image, truncated, too small, a bomb, a FIFO); the message names
    the file and what to do."""


class NoFaceFound(PhotoError):
    """Face alignment found no face in a photo; the message suggests `--no-align`."""


class FaceAlignUnavailable(PhotoError):
    """Face alignment cannot run on this machine (its package or a system library it needs is missing);
    the message says what to install, or to pass `--no-align`."""


def write_failed(path: object, exc: OSError) -> OSError:
    """The OSError an export raises when writing `path` failed (a read-only folder, a full disk): it names the
    file and the cause and says what to do; the atomic writers leave no partial file behind."""
    why = exc.strerror or str(exc)
    return OSError(exc.errno, f"could not write {path}: {why}; no partial file was left. Choose another folder "
                              "or free some space, then export again")


class FidError(ValueError):
    """A folder of real images that FID/KID cannot use (missing, empty, too few images); the message says
    what to put there. Raised before any model loads."""

"""Streamed, resumable, verified downloads with a progress callback and no printing.

A download goes to `<dest>.part` and is renamed to `dest` only once it is complete and verified, so a
partial or failed download is never mistaken for a model. A `.part` left by an interrupted run is
resumed with an HTTP Range request; a dropped connection is resumed the same way a few times before
giving up. Every failure is a `DownloadError` whose message names the URL and the exact path where the
file can be put by hand (the fix on a machine without network).

Called from TUI worker threads: progress goes through the callback only, never to stdout.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine import paths

MIRROR_ENV = "NADA_TUI_MIRROR"
# Set by the test suite: any host other than the loopback interface is refused, so no test can reach
# the internet by accident.
OFFLINE_TESTS_ENV = "NADA_TUI_OFFLINE_TESTS"
CHUNK = 1 << 20
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
USER_AGENT = "nada-tui (model download)"


@dataclass(frozen=True)
class DownloadProgress:
    name: str
    done_bytes: int
    total_bytes: int | None
    bytes_per_s: float

    @property
    def fraction(self) -> float | None:
        return self.done_bytes / self.total_bytes if self.total_bytes else None


ProgressFn = Callable[[DownloadProgress], None]


class DownloadError(RuntimeError):
    """A download that did not produce a verified file; the message says what to do instead."""


# One lock per destination: two worker threads asking for the same model share one download.
_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(dest: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(dest.resolve(), threading.Lock())


# ----- mirrors ----------------------------------------------------------------------------------------
def configured_mirror() -> str | None:
    """The base-URL override: $NADA_TUI_MIRROR, else `[models] mirror` in the config file, else None."""
    env = os.environ.get(MIRROR_ENV, "").strip()
    if env:
        return env
    cfg = paths.config_file()
    if cfg.is_file():
        import tomllib

        try:
            data = tomllib.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None  # a broken config file must not stop downloads; the app reports it elsewhere
        value = data.get("models", {}).get("mirror") if isinstance(data.get("models"), dict) else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def mirrored_url(url: str, mirror: str | None = None) -> str:
    """Replace everything before the file name with the mirror: a mirror serves the same file names.

    A mirror may be an http(s) base URL or a local directory (plain path or file:// URL).
    """
    mirror = configured_mirror() if mirror is None else mirror
    if not mirror:
        return url
    filename = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    if "://" not in mirror:
        mirror = Path(mirror).expanduser().absolute().as_uri()
    return mirror.rstrip("/") + "/" + urllib.parse.quote(filename)


def _check_allowed(url: str) -> None:
    if not os.environ.get(OFFLINE_TESTS_ENV):
        return
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise DownloadError(f"{OFFLINE_TESTS_ENV} is set: refusing to contact {host or url} (tests stay offline)")


# ----- hashing ----------------------------------------------------------------------------------------
def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def offline_hint(url: str, dest: Path) -> str:
    return (
        f"Download {url} on a machine with network access and put it at {dest} (same file name), "
        f"or set {MIRROR_ENV} (or `[models] mirror` in {paths.config_file()}) to a server or directory "
        "that has the same file names."
    )


# ----- the download -------------------------------------------------------------------------------------
class _Meter:
    """Throttles progress callbacks to about 10 per second and measures speed over the whole run."""

    def __init__(self, name: str, total: int | None, progress: ProgressFn | None, start_bytes: int) -> None:
        self.name, self.total, self.progress = name, total, progress
        self.t0 = time.monotonic()
        self.start_bytes = start_bytes
        self.last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        speed = (done - self.start_bytes) / max(now - self.t0, 1e-6)
        self.progress(DownloadProgress(self.name, done, self.total, speed))


def _content_total(resp: http.client.HTTPResponse, have: int) -> int | None:
    """Total file size from Content-Range (206) or Content-Length (200)."""
    cr = resp.headers.get("Content-Range")
    if cr and "/" in cr:
        tail = cr.rsplit("/", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    cl = resp.headers.get("Content-Length")
    if cl and cl.strip().isdigit():
        return int(cl) + (have if resp.status == 206 else 0)
    return None


def _fetch_once(url: str, part: Path, name: str, progress: ProgressFn | None, timeout: float) -> int | None:
    """One request, appending to `part` (resuming when the server honours Range). Returns total size."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s)/file only, checked
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # The partial file is as long as (or longer than) the file: start over.
            exc.close()
            part.unlink(missing_ok=True)
            return _fetch_once(url, part, name, progress, timeout)
        exc.close()
        raise
    with resp:
        status = getattr(resp, "status", None) or 200
        if have and status != 206:
            have = 0  # the server ignored Range and sends the whole file
        total = _content_total(resp, have) if status in (200, 206) else None
        meter = _Meter(name, total, progress, have)
        meter.update(have, force=True)
        with open(part, "ab" if have else "wb") as f:
            done = have
            while block := resp.read(CHUNK):
                f.write(block)
                done += len(block)
                meter.update(done)
            f.flush()
            os.fsync(f.fileno())
        meter.update(done, force=True)
        if total is not None and done < total:
            raise http.client.IncompleteRead(b"", total - done)
        return total


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    expected_size: int | None = None,
    progress: ProgressFn | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    name: str | None = None,
) -> Path:
    """Fetch `url` to `dest` unless `dest` already exists; verify; place atomically; return `dest`.

    `timeout` bounds the connection and every read (seconds). A connection lost mid-file is resumed
    from the `.part` file up to `retries` times. With `sha256` or `expected_size`, a file that does not
    match is deleted and DownloadError raised.
    """
    dest = Path(dest)
    name = name or dest.name
    if dest.is_file():
        return dest  # placed only after verification: a present file is a complete one
    _check_allowed(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with _lock_for(dest):
        if dest.is_file():  # another thread finished it while we waited
            return dest
        attempt = 0
        while True:
            try:
                total = _fetch_once(url, part, name, progress, timeout)
                break
            except urllib.error.HTTPError as exc:
                raise DownloadError(
                    f"Could not download {url}: the server answered HTTP {exc.code} {exc.reason}. "
                    + offline_hint(url, dest)
                ) from None
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
                # Lost mid-file (or stalled): resume from what we have, if anything arrived.
                attempt += 1
                if attempt > retries or not part.exists() or part.stat().st_size == 0:
                    raise DownloadError(
                        f"Could not download {url}: {_describe(exc)} ({attempt} attempts). "
                        f"The partial file {part} is kept and resumed next time. " + offline_hint(url, dest)
                    ) from None
            except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
                raise DownloadError(f"Could not download {url}: {_describe(exc)}. " + offline_hint(url, dest)) from None
        size = part.stat().st_size
        want_size = expected_size if expected_size is not None else total
        if want_size is not None and size != want_size:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"Download of {url} has {size} bytes, expected {want_size}; the bad file was removed. "
                "Try again, or check the mirror."
            )
        if sha256 is not None:
            got = sha256_file(part)
            if got.lower() != sha256.lower():
                part.unlink(missing_ok=True)
                raise DownloadError(
                    f"Download of {url} is corrupt: sha256 {got}, expected {sha256}; the bad file was "
                    "removed. Try again, or check the mirror."
                )
        os.replace(part, dest)
        return dest


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        exc = reason
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "no answer within the timeout (offline?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (offline, or nothing serves that address?)"
    if isinstance(exc, socket.gaierror):
        return "the host name could not be resolved (offline?)"
    if isinstance(exc, http.client.IncompleteRead):
        return "the connection was closed before the end of the file"
    text = str(exc) or type(exc).__name__
    return text


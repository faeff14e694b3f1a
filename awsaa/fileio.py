"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from awsaa.errors import AWSAAError

T = TypeVar("T")


def refuse_link(path: str | os.PathLike) -> None:
    """Refuse (one line) to write ``path`` unless it is missing or a plain file of its own: a
    symbolic link, a hard link (a second name of some other file), a FIFO, a device or a socket
    in its place could make a write land outside the run, block, or destroy another file. Its
    directory must be a real directory, not a link to one."""
    path = Path(path)
    try:
        parent = os.lstat(path.parent)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(parent.st_mode):
        raise AWSAAError(f"refusing to write {path}: its directory {path.parent} is a symbolic link")
    try:
        why = _unsafe(os.lstat(path), path)
    except FileNotFoundError:
        return
    if why:
        raise AWSAAError(f"refusing to write {path}: it is {why}")


def _unsafe(st: os.stat_result, path: Path) -> str | None:
    """What makes the file at ``path`` (``st`` from ``lstat``) unsafe to write or lock inside a
    run, or None: a symbolic link, anything but a regular file, a second name of another file."""
    if stat.S_ISLNK(st.st_mode):
        return f"a symbolic link (to {_target(path)})"
    if not stat.S_ISREG(st.st_mode):
        return f"a {_kind(st.st_mode)}, not a regular file"
    if st.st_nlink != 1:
        return f"a file with {st.st_nlink} hard links (it is also another file's name)"
    return None


def _target(path: Path) -> str:
    try:
        return os.readlink(path)[:200]
    except OSError:
        return "?"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success, fsync and rename it over ``path``.

    The temporary file is created exclusively (``mkstemp``: ``O_CREAT | O_EXCL | O_NOFOLLOW``,
    a fresh random name), so nothing that already exists is ever opened or truncated; the
    rename replaces ``path``'s directory entry and never writes through it. A ``path`` that is
    a link or not a regular file is refused (:func:`refuse_link`) before and again just before
    the rename. On any exception the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', not {mode!r}")
    path = Path(path)
    refuse_link(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        f: IO[Any] = os.fdopen(fd, "wb") if mode == "wb" else os.fdopen(fd, "w", encoding="utf-8")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        refuse_link(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


MAX_INPUT_BYTES = 16 * 2**20  # a policy is ~50 KB, a config ~2 KB: anything this big is not one


def read_text(path: str | os.PathLike, what: str, error: type[Exception] | None = None,
              max_bytes: int = MAX_INPUT_BYTES) -> str:
    """A text file's content, or one-line ``error`` naming ``what`` (e.g. "policy file") and why.

    Only a regular file is read (a FIFO or a device would block or never end), and only up to
    ``max_bytes``: a larger file is refused by its size before it is read."""
    error = error or AWSAAError
    path = Path(path)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"{what} {path} is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what} {path} is not a regular file")
        if st.st_size > max_bytes:
            raise error(f"{what} {path} is {st.st_size:,} bytes; the limit is {max_bytes:,}")
        with open(path, encoding="utf-8") as f:
            text = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{what} {path} cannot be read: {e}") from None
    if len(text) > max_bytes:  # it grew while we read it
        raise error(f"{what} {path} is over the limit of {max_bytes:,} bytes")
    return text


def same_version(value: Any, expected: int) -> bool:
    """Whether a file's format version is ``expected`` as written: an int, so ``true`` (equal
    to 1 in Python) is no version."""
    return type(value) is int and value == expected


def check_header(d: Any, fmt: str, version: int, keys: set[str], what: str) -> dict[str, Any]:
    """The outer checks of a versioned JSON file (a policy, an architecture): a JSON object
    whose ``"format"`` is ``fmt``, whose ``"version"`` this awsaa reads, and no key but
    ``keys``; each error is one line naming ``what``."""
    article = "an" if what[0] in "aeiou" else "a"
    if not isinstance(d, dict):
        raise AWSAAError(f"{article} {what} must be a JSON object, got {type(d).__name__}")
    if d.get("format") != fmt:
        raise AWSAAError(f"not an awsaa {what}: expected \"format\": \"{fmt}\", got {d.get('format')!r}")
    if not same_version(d.get("version"), version):
        raise AWSAAError(f"{what} version {d.get('version')!r} is not supported (this awsaa reads version {version})")
    unknown = sorted(set(d) - keys)
    if unknown:
        raise AWSAAError(f"unknown key(s) {unknown} in {what}")
    return d


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:  # json.loads would keep the last silently; the YAML configs refuse it too
            raise _DuplicateKey(f"duplicate key {key!r}")
        out[key] = value
    return out


def load_json_file(path: str | os.PathLike, what: str, parse: Callable[[Any], T]) -> T:
    """A versioned JSON file (an architecture, a latency table) read and handed to ``parse``;
    every error one line that names ``what``, the file and the problem."""
    path = Path(path)
    d = parse_json(read_text(path, what), f"{what} {path}")
    try:
        return parse(d)
    except AWSAAError as e:
        raise AWSAAError(f"{what} {path}: {e}") from None


def parse_json(text: str, what: str, error: type[Exception] | None = None, **kwargs: Any) -> Any:
    """``json.loads`` with every failure (syntax, a too-deeply nested document, a key given
    twice in one object) as one line."""
    error = error or AWSAAError
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, **kwargs)
    except RecursionError:
        raise error(f"{what} is nested too deeply to be read") from None
    except _DuplicateKey as e:
        raise error(f"{what} gives a {e}: which one is meant?") from None
    except ValueError as e:  # JSONDecodeError is one
        raise error(f"{what} is not valid JSON: {e}") from None


def check_output_file(path: str | os.PathLike, what: str = "output") -> Path:
    """An output file's path, its parent directory created when missing; one line when that
    cannot be (a parent is a file) or when ``path`` itself is a directory."""
    path = Path(path)
    if path.is_dir():
        raise AWSAAError(f"{what} {path} is a directory")
    ensure_writable_dir(path.parent, f"directory of the {what}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AWSAAError(f"cannot create the directory of the {what} {path}: {e.strerror or e}") from None
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def atomic_save(path: str | os.PathLike, writer: Callable[[IO], None]) -> None:
    """Write a binary file through ``writer(f)`` (e.g. ``lambda f: torch.save(obj, f)``) atomically."""
    with atomic_open(path, "wb") as f:
        writer(f)


def ensure_writable_dir(path: str | os.PathLike, what: str = "directory") -> Path:
    """Prove that ``path`` can be written (or created) before any work starts: a probe file is
    written and removed in ``path`` or its nearest existing parent. Nothing is left behind, so
    a later error (an unreachable cluster, say) leaves the file system as it was."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise AWSAAError(f"cannot write to the {what} {path}: {existing} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".awsaa-write-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise AWSAAError(f"cannot write to the {what} {path}: {e.strerror or e}") from None
    return path


_HELD_LOCKS: dict[Path, int] = {}  # the lock's file descriptor of each directory this process holds
LOCK_NAME = ".awsaa.lock"  # flocked; never written, never truncated
HOLDER_NAME = ".awsaa.holder"  # who holds the lock (pid, host, since), replaced atomically by each holder
OWN_FILES = (LOCK_NAME, HOLDER_NAME)


def check_tree(path: str | os.PathLike, what: str, max_entries: int = 200_000) -> None:
    """Refuse (one line) a directory that holds anything a write could follow out of it or
    block on: a symbolic link, a file with more than one hard link, a FIFO, a device or a
    socket, at any depth. Run before a command writes into a directory it did not create
    (``--resume``), so a planted link is named before any work, not found by a write."""
    root = Path(path)
    stack, seen = [root], 0
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError as e:
            raise AWSAAError(f"cannot read the {what} {d}: {e.strerror or e}") from None
        for entry in entries:
            seen += 1
            if seen > max_entries:
                raise AWSAAError(f"the {what} {root} holds more than {max_entries:,} files; is it the right one?")
            p = Path(entry.path)
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                stack.append(p)
                continue
            why = _unsafe(st, p)
            if why:
                raise AWSAAError(f"refusing to use the {what} {root}: {p} is {why}; a run holds only its own files")


def _holder(path: Path) -> str:
    """Who holds the lock of ``path``, as its holder wrote it (bounded; the CLI escapes it)."""
    try:
        fd = os.open(path / HOLDER_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return "another process"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "another process"
        text = os.read(fd, 200).decode(errors="replace")
    finally:
        os.close(fd)
    return " ".join(text.split()) or "another process"


def claim_dir(path: str | os.PathLike, what: str, new: bool) -> Path:
    """Make this process the one writer of directory ``path`` (a search run, a training
    experiment) for as long as it lives.

    ``new``: the directory must not exist yet, and is created here (``mkdir`` is atomic, so of
    two commands started together one gets it). Else it must be a real directory holding no
    links or special files (:func:`check_tree`). Then an exclusive ``flock`` on
    ``<path>/.awsaa.lock``, opened without following links and refused unless it is a regular
    file with one name; it is never written. The holder's pid, host and start time go to
    ``.awsaa.holder`` (written atomically), and a second command is refused with one line naming
    the holder. The kernel drops the lock when the holder exits or is killed, so a stale lock
    file never blocks."""

    path = Path(path)
    if new:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir()
        except FileExistsError:
            raise AWSAAError(f"{what} {path} already exists (another command just created it?)") from None
        except OSError as e:
            raise AWSAAError(f"cannot create the {what} {path}: {e.strerror or e}") from None
    else:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise AWSAAError(f"{what} {path} does not exist") from None
        if not stat.S_ISDIR(st.st_mode):
            raise AWSAAError(f"{what} {path} is not a directory")
    lock = path / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise AWSAAError(f"refusing to lock the {what} {path}: {lock} is a symbolic link") from None
        raise AWSAAError(f"cannot lock the {what} {path}: {e.strerror or e}") from None
    why = _unsafe(os.fstat(fd), lock)  # never a symbolic link: O_NOFOLLOW refused that above
    if why:
        os.close(fd)
        raise AWSAAError(f"refusing to lock the {what} {path}: {lock} is {why}, not a lock file of its own")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AWSAAError(f"{what} {path} is in use by {_holder(path)}; wait for it or stop it") from None
    _HELD_LOCKS[path.resolve()] = fd
    if not new:
        check_tree(path, what)  # under the lock: nothing of ours is writing it now
    atomic_write_text(path / HOLDER_NAME,
                      f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    return path


def release_dirs() -> None:
    """Drop every lock this process holds (a test that runs several commands in one process)."""
    while _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(_HELD_LOCKS.popitem()[1])


def release_dir(path: str | os.PathLike) -> None:
    """Drop this process's lock on directory ``path`` (:func:`claim_dir`), if it holds one."""
    fd = _HELD_LOCKS.pop(Path(path).resolve(), None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)

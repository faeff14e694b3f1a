"""What every command-line tool shares: one-line errors and exit codes."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from collections.abc import Callable

from awsaa.errors import AWSAAError
from awsaa.fileio import release_dirs

EXIT_USAGE = 2  # bad input: config, file, path, address


class Parser(argparse.ArgumentParser):
    """argparse with the tools' error format: one line ``prog: error: ...``, exit 2 (argparse
    would print its usage block first)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())}\n")


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit status when argparse stops (``--help``: 0; bad usage: 2)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in [low, high], else a one-line error naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text[:50]!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def float_range(low: float) -> Callable[[str], float]:
    """An argparse ``type``: a finite number >= low."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text[:50]!r}") from None
        if not value >= low or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number >= {low}, got {text[:50]}")
        return value

    return parse


NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,99}")


def run_name(text: str) -> str:
    """An argparse ``type`` for ``--name``: one safe path component (letters, digits, ``._+=-``,
    not starting with a dot or dash, at most 100 characters), so a run stays inside its storage."""
    if not NAME_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text[:60]!r} is not a run name: use one path component of letters, digits and ._+=- "
            f"(starting with a letter or digit, at most 100 characters)")
    return text


class Interrupted(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM: the tool stops at a clean point, says where the run stands
    and exits with 128 + the signal's number (130, 143)."""

    def __init__(self, signum: int, detail: str = "") -> None:
        super().__init__(detail)
        self.signum = signum
        self.detail = detail

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def as_interrupted(e: BaseException) -> Interrupted | None:
    """The :class:`Interrupted` behind ``e``, if any. Raised from a signal handler while Ray's
    C++ core is waiting, it surfaces wrapped (``SystemError: ... returned a result with an
    exception set``), with ours as its context."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, Interrupted):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


_graceful: dict[str, object] = {"stop": None, "signum": None}


def install_stop_signals() -> None:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the main thread; inside
    :func:`graceful_section` they first ask the section to stop at a clean point (a second
    signal raises at once). Call it after ``ray.init``, which installs its own SIGTERM handler."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        stop = _graceful["stop"]
        if stop is not None and _graceful["signum"] is None:
            _graceful["signum"] = signum
            print(f"\n{signal.Signals(signum).name}: stopping at the next clean point "
                  f"(signal again to stop at once)", file=sys.stderr, flush=True)
            stop()
            return
        raise Interrupted(_graceful["signum"] or signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


class graceful_section:
    """``with graceful_section(stop) as g: ...``: a stop signal calls ``stop()`` and the body
    goes on to a clean end; ``g.signum`` then tells which signal came (None if none)."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self.stop = stop
        self.signum: int | None = None

    def __enter__(self) -> graceful_section:
        _graceful.update(stop=self.stop, signum=None)
        return self

    def __exit__(self, *exc) -> None:
        self.signum = _graceful["signum"]  # type: ignore[assignment]
        _graceful.update(stop=None, signum=None)


def ask_tune_to_stop() -> None:
    """Ray Tune stops a running experiment at a clean point on SIGUSR1, once its handler is in
    place; before that nothing has run yet and the tool stops at once."""
    if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
        raise Interrupted(_graceful["signum"] or signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGUSR1)


def run_main(fn: Callable[[], int | None], prog: str) -> int:
    """Run ``fn``; turn :class:`AWSAAError` into ``prog: error: <line>`` on stderr and exit 2,
    a stop signal into its message and 128 + its number. Signal handlers are restored after."""
    main_thread = threading.current_thread() is threading.main_thread()
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        return _run(fn, prog)
    finally:
        release_dirs()  # the run's lock ends with the command (tests run several in one process)
        for s, h in saved.items():
            if h is not None:  # None: set outside Python, cannot be restored from here
                signal.signal(s, h)


def _run(fn: Callable[[], int | None], prog: str) -> int:
    try:
        return int(fn() or 0)
    except AWSAAError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as e:
        print(f"{prog}: interrupted ({e.name})" + (f"; {e.detail}" if e.detail else ""), file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (SIGINT)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `awsaa-policy show p.json | head`
        return 0
    except Exception as e:
        stop = as_interrupted(e)
        if stop is None:
            raise
        print(f"{prog}: interrupted ({stop.name})" + (f"; {stop.detail}" if stop.detail else ""), file=sys.stderr)
        return 128 + stop.signum

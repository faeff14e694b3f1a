"""What every command-line tool shares: one-line errors and exit codes."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

from awsaa.errors import AWSAAError

EXIT_USAGE = 2  # bad input: config, file, path, address


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

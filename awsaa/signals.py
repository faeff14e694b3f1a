"""Stop signals, shared by the command-line tools (``awsaa.cli``) and the Ray drivers
(``awsaa.distributed``): SIGINT and SIGTERM become :class:`Interrupted`, or, inside a
:class:`graceful_section`, a request to stop at the next clean point."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable


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
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, Interrupted):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


class _Graceful:
    """The running :class:`graceful_section`'s stop function, and the signal that came."""

    stop: Callable[[], None] | None = None
    signum: int | None = None


_graceful = _Graceful()


def install_stop_signals() -> None:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the main thread; inside
    :func:`graceful_section` they first ask the section to stop at a clean point (a second
    signal raises at once). Call it after ``ray.init``, which installs its own SIGTERM handler."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        stop = _graceful.stop
        if stop is not None and _graceful.signum is None:
            _graceful.signum = signum
            print(f"\n{signal.Signals(signum).name}: stopping at the next clean point "
                  f"(signal again to stop at once)", file=sys.stderr, flush=True)
            stop()
            return
        abandoning()
        raise Interrupted(_graceful.signum or signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def abandoning() -> None:
    """The command stops without waiting for the work in flight: the errors that work ends
    with (a stage-1 task whose progress queue is gone, ...) are not news, and Ray would print
    each, with its remote traceback, after the tool's line."""
    os.environ["RAY_IGNORE_UNHANDLED_ERRORS"] = "1"  # read by Ray each time, in this process only


class graceful_section:
    """``with graceful_section(stop) as g: ...``: a stop signal calls ``stop()`` and the body
    goes on to a clean end; ``g.signum`` then tells which signal came (None if none)."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self.stop = stop
        self.signum: int | None = None

    def __enter__(self) -> graceful_section:
        _graceful.stop, _graceful.signum = self.stop, None
        return self

    def __exit__(self, *exc) -> None:
        self.signum = _graceful.signum
        _graceful.stop, _graceful.signum = None, None


def ask_tune_to_stop() -> None:
    """Ray Tune stops a running experiment at a clean point on SIGUSR1, once its handler is in
    place; before that nothing has run yet and the tool stops at once."""
    if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
        raise Interrupted(_graceful.signum or signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGUSR1)

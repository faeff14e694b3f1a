"""What runs before anything heavy is imported (``import awsaa`` imports this first).

* A deleted working directory: torch's MKL dies on it with a fatal error and exit 2, awsaa's
  usage-error code; this says so in one line and exits 1 first.
* A tool's stop signal before its main runs (torch and Ray take seconds to import): one line
  and 128 + the signal's number, instead of a KeyboardInterrupt traceback from inside an
  import. The tools' main installs their own handling at its start, and these again at its end
  (:func:`awsaa.cli.common.run_main`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

TOOLS = ("awsaa-search", "awsaa-train", "awsaa-policy")

try:
    os.getcwd()
except FileNotFoundError:
    raise SystemExit("awsaa: error: the working directory no longer exists (it was deleted while in use); "
                     "cd to one that does") from None


_when = ["while starting"]


def stopped_while_starting(signum: int, frame: Any) -> None:
    """Before the tool's main and after it (its handlers are put back at its end, for the
    interpreter's exit: Ray's shutdown takes a second): one line, then exit at once."""
    tool = os.path.basename(sys.argv[0])
    os.write(2, f"{tool}: interrupted ({signal.Signals(signum).name}) {_when[0]}\n".encode())
    os._exit(128 + signum)


def finishing() -> None:
    """The tool's main has ended: a stop signal from now on comes while it exits."""
    _when[0] = "while exiting"


def _a_tool() -> bool:
    argv = getattr(sys, "argv", None) or [""]
    return os.path.basename(argv[0] or "") in TOOLS and threading.current_thread() is threading.main_thread()


if _a_tool():
    for _signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_signum, stopped_while_starting)

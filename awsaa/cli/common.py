"""What every command-line tool shares: one-line errors and exit codes."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import yaml

from awsaa import faultplan
from awsaa._start import finishing, stopped_while_starting
from awsaa.config import RESOURCE_STEP, json_schema, to_dict
from awsaa.distributed.jobs import is_job_address, submit
from awsaa.errors import AWSAAError
from awsaa.fileio import release_dirs
from awsaa.signals import Interrupted, abandoning, as_interrupted, install_stop_signals
from awsaa.terminal import shown

__all__ = ["EXIT_USAGE", "Interrupted", "Parser", "as_interrupted", "float_range", "install_stop_signals",
           "int_range", "parse_args", "run_main", "run_name", "tool_main"]

EXIT_USAGE = 2  # bad input: config, file, path, address
ERROR_LIMIT = 1000  # characters of an error line's message (it may quote a file name or content)


class Parser(argparse.ArgumentParser):
    """argparse with the tools' error format: one line ``prog: error: ...``, exit 2 (argparse
    would print its usage block first)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {shown(' '.join(message.split()), ERROR_LIMIT)}\n")


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit status when argparse stops (``--help``: 0; bad usage: 2)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE


def tool_main(prog: str, parser: argparse.ArgumentParser, argv: list[str] | None,
              run: Callable[[argparse.Namespace], int | None],
              check_locally: Callable[[argparse.Namespace], None]) -> int:
    """The ``main`` of ``awsaa-search`` and ``awsaa-train``: parse; with ``--address http://...``
    check what can be checked here (``check_locally``) and submit the command as a Ray job,
    rebuilt from the parsed arguments; else ``run(args)`` here. Errors and signals as
    :func:`run_main` reports them."""
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    if args.address is None and is_job_address(os.environ.get("RAY_ADDRESS")):
        # Ray's job CLI reads a dashboard URL from $RAY_ADDRESS; so do the tools, as --address
        args.address = os.environ["RAY_ADDRESS"]

    def dispatch() -> int | None:
        if is_job_address(args.address) and not (args.print_config or args.print_schema):
            check_locally(args)
            return submit(prog, parser, args, args.address, wait=not args.no_wait)
        return run(args)

    return run_main(dispatch, prog)


def add_print_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--print-config", action="store_true",
                        help="print the effective config (YAML: the file, --set and the other overrides) and exit")
    parser.add_argument("--print-schema", action="store_true",
                        help="print the config's JSON schema (for editors; also under configs/schema/) and exit")


def print_configs(configs: list[Any]) -> int:
    """``--print-config``: each effective config as YAML, ``---`` between them."""
    print("\n---\n".join(yaml.safe_dump(to_dict(c), sort_keys=False).rstrip() for c in configs))
    finish_output()
    return 0


def print_schema(cls: Any) -> int:
    """``--print-schema``: the JSON schema of config class ``cls``."""
    print(json.dumps(json_schema(cls), indent=1))
    finish_output()
    return 0


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
    """An argparse ``type``: a finite number >= low, and 0 or at least Ray's resource step."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text[:50]!r}") from None
        if not value >= low or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number >= {low}, got {text[:50]}")
        if 0 < value < RESOURCE_STEP:
            raise argparse.ArgumentTypeError(f"must be 0 or at least {RESOURCE_STEP} (Ray's step), got {text[:50]}")
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


class Output:
    """The tools' standard output. A reader that goes away (``| head``) or a write that fails
    (a full disk, ``> /dev/full``) stops the output, not the work: the first failure is
    remembered, the descriptor is pointed at /dev/null (so nothing buffered fails again at
    exit) and the rest of the lines go nowhere. :func:`finish_output` turns the failure into
    an error for the commands whose output is their result."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.failed: OSError | None = None

    def write(self, text: str) -> int:
        if self.failed is None:
            try:
                return self.stream.write(text)
            except OSError as e:
                self._fail(e)
        return len(text)

    def flush(self) -> None:
        if self.failed is None:
            try:
                self.stream.flush()
            except OSError as e:
                self._fail(e)

    def isatty(self) -> bool:
        return self.failed is None and self.stream.isatty()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, ...: the stream's own
        return getattr(self.stream, name)

    def _fail(self, error: OSError) -> None:
        self.failed = error
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)
        except (OSError, ValueError, AttributeError):  # no descriptor (a test's capture): nothing buffered there
            pass


def _open_standard_streams() -> None:
    """A closed descriptor 0, 1 or 2 (``>&-``) is opened on /dev/null: otherwise the next file
    opened (a checkpoint, a log) would get its number, and whatever writes to the terminal
    (Ray's processes inherit it) would write into that file."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def finish_output() -> None:
    """For a command whose output is its result (``--print-config``, ``awsaa-policy show``):
    standard output must have taken all of it. A reader that went away (``| head``) is not an
    error; any other failure is."""
    out = sys.stdout
    out.flush()
    failed = getattr(out, "failed", None)
    if failed is not None and not isinstance(failed, BrokenPipeError):
        raise AWSAAError(f"cannot write to standard output: {failed.strerror or failed}")


def run_main(fn: Callable[[], int | None], prog: str) -> int:
    """Run ``fn``; turn :class:`AWSAAError` into ``prog: error: <line>`` on stderr and exit 2,
    a stop signal into its message and 128 + its number. Signal handlers are restored after.
    Standard output is an :class:`Output` while ``fn`` runs."""
    main_thread = threading.current_thread() is threading.main_thread()
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    _open_standard_streams()
    stdout, stderr = sys.stdout, sys.stderr
    if stderr is None:  # closed when Python started: errors go nowhere, the exit status still tells
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (restored below)
    if stdout is None:
        out = sys.stdout = Output(open(os.devnull, "w"))  # noqa: SIM115
        out.failed = OSError(errno.EBADF, "it was closed when the command started (>&-)")
    else:
        out = sys.stdout = stdout if isinstance(stdout, Output) else Output(stdout)
    try:
        code = _run(fn, prog, starting=any(h is stopped_while_starting for h in saved.values()))
        failed = getattr(out, "failed", None)
        if failed is not None and code == 0 and not isinstance(failed, BrokenPipeError):
            print(f"{prog}: note: standard output stopped taking lines ({failed.strerror or failed}); "
                  f"the run's files hold everything", file=sys.stderr)
        return code
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        release_dirs()  # the run's lock ends with the command (tests run several in one process)
        for s, h in saved.items():
            if h is stopped_while_starting:
                finishing()  # one line again, for a signal while the interpreter exits
            if h is not None:  # None: set outside Python, cannot be restored from here
                signal.signal(s, h)


def _raised(e: AWSAAError) -> AWSAAError:
    """The error as raised: an error raised in a Ray task or actor reaches the driver as Ray's
    wrapper (a subclass of both), whose text is the remote traceback with colour codes; its
    ``cause`` is the error itself."""
    while isinstance(getattr(e, "cause", None), AWSAAError) and e.cause is not e:  # type: ignore[attr-defined]
        e = e.cause  # type: ignore[attr-defined]
    return e


def _run(fn: Callable[[], int | None], prog: str, starting: bool = False) -> int:
    try:
        if starting:
            # the handlers of the tools' start (awsaa/_start.py) end here and the tools' own take
            # over at once: a stop signal before Ray is up is one line too (with SIGTERM's default
            # the command died silently, -15, while it read its config)
            install_stop_signals()
            faultplan.point("tool_main")  # the fault suite's signal in this window
        return int(fn() or 0)
    except AWSAAError as e:
        print(f"{prog}: error: {shown(_raised(e), ERROR_LIMIT)}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as e:
        return _stopped(prog, e)
    except KeyboardInterrupt:
        return _stopped(prog, Interrupted(signal.SIGINT))
    except BrokenPipeError:  # e.g. `awsaa-policy show p.json | head`
        return 0
    except Exception as e:
        stop = as_interrupted(e)
        if stop is None:
            raise
        return _stopped(prog, stop)


def _stopped(prog: str, stop: Interrupted) -> int:
    """A stop signal's one line (with where the run stands, when known); 128 + its number."""
    abandoning()
    print(f"{prog}: interrupted ({stop.name})" + (f"; {shown(stop.detail, ERROR_LIMIT)}" if stop.detail else ""),
          file=sys.stderr)
    return 128 + stop.signum

"""What every command-line tool shares: one-line errors and exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable

from awsaa.errors import AWSAAError

EXIT_USAGE = 2  # bad input: config, file, path, address


def run_main(fn: Callable[[], int | None], prog: str) -> int:
    """Run ``fn``; turn :class:`AWSAAError` into ``prog: error: <line>`` on stderr and exit 2."""
    try:
        return int(fn() or 0)
    except AWSAAError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `awsaa-policy show p.json | head`
        return 0

"""The project's own error type.

Every error a user can cause (a bad config, policy file, checkpoint, dataset path or
address) is raised as :class:`AWSAAError` with a one-line message that names what is
wrong. The command-line tools print that line to stderr and exit with status 2; any
other exception is a bug.
"""

from __future__ import annotations


class AWSAAError(Exception):
    """A user-facing error whose message is one line naming the problem."""

    def __init__(self, message: str) -> None:
        # Keep messages to one line so the CLI can print them as they are.
        super().__init__(" ".join(str(message).split()))

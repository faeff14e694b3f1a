"""No process outlives the command that started a local Ray.

``awsaa-train`` and ``awsaa-search`` start a local Ray (GCS, raylet, agents, worker processes)
when no cluster is named. Ray ties the GCS and the raylet to the driver's life, but not what
the raylet starts: killed outright, a driver left ``ray::DashboardAgent`` and
``ray::RuntimeEnvAgent`` running for good, and a trial could keep training. :func:`watch`
starts this module as a small process in a session of its own (so no signal to the command's
process group reaches it), which

* records, twice a second, every process descended from the driver (pid and start time, so a
  reused pid is never taken for one of them), and
* once the driver is gone, however it ended, SIGKILLs every recorded process still alive, and
  every process whose environment carries the driver's token (:func:`mark`: a Ray process
  started too late for the last record still inherited it), and exits.

On a normal exit Ray has already stopped its processes and there is nothing left to kill.
Linux only (``/proc``); elsewhere :func:`watch` does nothing.

    python awsaa/distributed/reaper.py DRIVER_PID TOKEN
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

PERIOD_S = 0.5


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of ``pid``, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(rest[1]), int(rest[19])


def _processes() -> dict[int, tuple[int, int]]:
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                out[int(entry.name)] = st
    return out


def descendants(root: int, procs: dict[int, tuple[int, int]]) -> dict[int, int]:
    """{pid: start time} of every process below ``root``."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in out:
            out[pid] = procs[pid][1]
            todo += children.get(pid, [])
    return out


TOKEN_VAR = "AWSAA_REAPER_TOKEN"


def _carries(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def reap(driver: int, token: str = "") -> int:
    """Watch ``driver``; once it is gone, kill what it left: every process recorded below it,
    and every process whose environment carries ``token`` (set in the driver before its Ray
    started, so every Ray process inherits it, including one started a moment before the
    driver died, too late for the last record). Returns how many were killed."""
    me = os.getpid()
    driver_start = (_stat(driver) or (0, -1))[1]
    known: dict[int, int] = {}
    while (_stat(driver) or (0, -2))[1] == driver_start:
        known.update(descendants(driver, _processes()))
        known.pop(me, None)
        time.sleep(PERIOD_S)
    killed = 0
    marker = f"{TOKEN_VAR}={token}".encode()
    for _ in range(3):  # a process may fork while we kill: sweep what the recorded ones started
        procs = _processes()
        for pid, start in list(known.items()):
            if procs.get(pid, (0, None))[1] == start:
                known.update(descendants(pid, procs))
        if token:
            known.update({pid: st[1] for pid, st in procs.items() if pid != me and _carries(pid, marker)})
        for pid, start in known.items():
            st = procs.get(pid)
            if st is not None and st[1] == start and pid != me:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except OSError:
                    pass
        time.sleep(PERIOD_S)
    return killed


_started: list[subprocess.Popen] = []  # one reaper per driver process


_token: list[str] = []  # this process's own token, made once


def mark() -> None:
    """Give every process this one starts from now on the reaper's token: a fresh one, never
    an inherited one (a command started by another awsaa process, a test for instance, must
    not reap its parent's processes). Call before the local Ray starts, then :func:`watch`."""
    if sys.platform.startswith("linux") and not _token:
        _token.append(uuid.uuid4().hex)
        os.environ[TOKEN_VAR] = _token[0]


def watch() -> None:
    """Start the reaper for this process, once. No-op off Linux."""
    if _started or not sys.platform.startswith("linux") or not Path("/proc/self/stat").exists():
        return
    token = _token[0] if _token else ""
    env = {k: v for k, v in os.environ.items() if k != TOKEN_VAR}  # the reaper must not match itself
    # run as a file, not as a module of the package: the reaper imports the standard library only
    # (importing awsaa would load torch: seconds of CPU and hundreds of MB for a watcher)
    _started.append(subprocess.Popen([sys.executable, "-I", __file__, str(os.getpid()), token], env=env,
                                     start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, close_fds=True))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reap(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "")

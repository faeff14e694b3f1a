"""Faults at points a test names (the fault suite, ``tests/test_faults.py``). Off unless
``$AWSAA_FAULT_PLAN`` names a file; while that file does not exist, nothing happens.

A plan says where a process kills itself (a real ``SIGKILL``, as the kernel's OOM killer or a
lost node would) or hangs, so a test gets exactly the faults it asks for on a fast or
a slow machine instead of racing a killer thread against the work::

    {"format":     "awsaa.faultplan",
     "worker":     [{"loop": 0, "traj": 1, "at": "start" | "mid", "do": "kill" | "hang"}],
     "controller": [{"loop": 2, "do": "kill"}],
     "stage1":     [{"epoch": 2, "do": "hang"}],
     "train":      [{"epoch": 1, "do": "kill"}],
     "train_step": [{"epoch": 2, "do": "hang"}],
     "ray_init":   [{"do": "sigterm" | "sigint"}],
     "ray_start":  [{"do": "sigterm" | "sigint" | "mark"}]}

``loop`` counts from 0 (the driver's loop index); a worker's ``mid`` is right after the first
training step of the trajectory; ``stage1`` and ``train`` fire after epoch ``epoch`` (from 1)
is done (for ``train``: reported with its checkpoint), ``train_step`` right after the first
training step of epoch ``epoch`` (the middle of that epoch); ``controller`` fires when the driver
asks for loop ``loop``'s policies; ``ray_init`` fires in a tool's driver inside ``ray.init``, where
Ray would install its SIGTERM handler (before any of its processes starts); ``ray_start`` once
its local Ray is up but before the stop signals held during its start are let through.
``sigterm`` and ``sigint`` send that signal to the process itself and go on; ``mark`` only
leaves the marker (with what the point records).

Each entry fires **once**: before acting, the process creates ``<plan>.fired/<name>``
exclusively and writes its pid and what it held, so the rerun of a killed trajectory (or a
restarted controller) goes through and the test can read which process was hit. ``hang``
sleeps until the process is killed.

A file that is not such a plan (unreadable, not JSON, without ``"format": "awsaa.faultplan"``:
the variable left pointing at something else) is no plan: nothing happens. A test hook must
never break a user's run.

The variable is read by every process of a local Ray cluster because Ray's processes inherit
the environment of the process that started the cluster (the tests set it before that).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

ENV = "AWSAA_FAULT_PLAN"
FORMAT = "awsaa.faultplan"


def _fired_dir() -> Path | None:
    p = os.environ.get(ENV)
    return Path(p + ".fired") if p else None


def _entries(kind: str) -> list[dict[str, Any]]:
    p = os.environ.get(ENV)
    if not p:
        return []
    try:
        plan = json.loads(Path(p).read_text())
    except (OSError, ValueError, RecursionError):  # missing, unreadable, not text, not JSON: no plan
        return []
    if not isinstance(plan, dict) or plan.get("format") != FORMAT:
        return []
    entries = plan.get(kind, [])
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def name(kind: str, **where: Any) -> str:
    """The marker name of a point: ``kind`` and its coordinates, e.g. ``worker-3-0-mid``."""
    return "-".join([kind, *(str(v) for v in where.values())])


def fired(marker: str) -> dict[str, Any] | None:
    """What the process that fired ``marker`` wrote (``pid``, ``detail``), or None."""
    d = _fired_dir()
    f = d / marker if d else None
    try:
        return json.loads(f.read_text()) if f is not None else None
    except (FileNotFoundError, ValueError):  # not fired, or being written
        return None


def _claim(marker: str, detail: Any) -> bool:
    detail = detail() if callable(detail) else detail  # computed only when the point fires
    d = _fired_dir()
    assert d is not None
    d.mkdir(exist_ok=True)
    tmp = d / f".{marker}.{os.getpid()}"
    tmp.write_text(json.dumps({"pid": os.getpid(), "detail": detail}))
    try:
        os.link(tmp, d / marker)  # atomic and exclusive: the first process to get here fires
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def point(kind: str, detail: Any = None, **where: Any) -> None:
    """A named point in ``kind``'s code: act if the plan names it and it has not fired yet.
    ``detail`` (what the fired marker records) may be a function, called only then."""
    for e in _entries(kind):
        if all(e.get(k, "start" if k == "at" else None) == v for k, v in where.items()):
            marker = name(kind, **where)
            if not _claim(marker, detail):
                continue
            do = e.get("do", "kill")
            if do not in ("kill", "hang", "sigterm", "sigint", "mark"):
                raise ValueError(f"fault plan: unknown action {do!r}")
            if do == "mark":
                return
            if do in ("sigterm", "sigint"):
                os.kill(os.getpid(), signal.SIGTERM if do == "sigterm" else signal.SIGINT)
                return
            if do == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            while True:  # hang until killed
                time.sleep(0.1)

"""The fault accounting of the fault suite and the bad-input battery, as a pytest plugin
(registered by conftest.py): each test counts what it injected with :func:`count`; the totals
are printed at the end of the run ("faults injected") and written to ``$AWSAA_FAULT_TOTALS``
when set (RELIABILITY.md quotes them). Under pytest-xdist (``make test``) each worker hands
its counts to the controlling process, which prints the totals."""

import json
import os

import pytest

# {fault: [times injected, loops or epochs lost]}
FAULTS: dict[str, list[int]] = {}


def count(fault: str, injected: int = 1, lost: int = 0) -> None:
    """``fault`` was injected ``injected`` times and cost ``lost`` finished loops or epochs."""
    FAULTS.setdefault(fault, [0, 0])
    FAULTS[fault][0] += injected
    FAULTS[fault][1] += lost


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)  # set in an xdist worker only
    if workeroutput is not None:
        workeroutput["awsaa_faults"] = FAULTS


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown to pytest without the plugin
def pytest_testnodedown(node, error):
    """In xdist's controlling process: a worker finished; add its counts."""
    for fault, (injected, lost) in getattr(node, "workeroutput", {}).get("awsaa_faults", {}).items():
        count(fault, injected, lost)


def pytest_terminal_summary(terminalreporter):
    if not FAULTS:
        return
    injected = sum(v[0] for v in FAULTS.values())
    lost = sum(v[1] for v in FAULTS.values())
    terminalreporter.section("faults injected")
    for name, (n, lost_here) in sorted(FAULTS.items()):
        terminalreporter.write_line(f"{n:4d}  {name}  (lost: {lost_here})")
    terminalreporter.write_line(f"total: {injected} injected and survived, {lost} loops/epochs lost")
    if os.environ.get("AWSAA_FAULT_TOTALS"):
        with open(os.environ["AWSAA_FAULT_TOTALS"], "w") as f:
            json.dump({"faults": FAULTS, "injected": injected, "lost": lost}, f, indent=1)

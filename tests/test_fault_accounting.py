"""The fault accounting plugin (tests/fault_accounting.py) where ``make test`` runs it: in
pytest-xdist's worker processes, whose counts the controlling process adds up."""

import json
import os
import subprocess
import sys
from pathlib import Path

PLUGIN = """
def pytest_configure(config):
    import fault_accounting

    config.pluginmanager.register(fault_accounting, "awsaa-fault-accounting")
"""
COUNTS = """
import pytest
from fault_accounting import count


@pytest.mark.parametrize("i", range(4))
def test_one(i):
    count("a fault", injected=i + 1, lost=i % 2)
"""


def test_the_totals_add_up_over_the_xdist_workers(tmp_path):
    (tmp_path / "conftest.py").write_text(PLUGIN)
    (tmp_path / "test_counts.py").write_text(COUNTS)
    totals = tmp_path / "totals.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "AWSAA_FAULT_TOTALS": str(totals)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "load",
                        str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "4 passed" in r.stdout, r.stdout[-2000:]
    assert "  10  a fault  (lost: 2)" in r.stdout  # 1 + 2 + 3 + 4, made in two processes
    assert json.loads(totals.read_text()) == {"faults": {"a fault": [10, 2]}, "injected": 10, "lost": 2}

"""The GPU check's CPU-runnable parts (benchmarks/gpu_check.py; `make gpu-check` on a GPU)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402


def test_without_cuda_it_says_so_in_one_line_and_exits_0():
    r = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-500:]
    assert r.stdout.count("\n") == 1 and "no CUDA device" in r.stdout and r.stderr == ""


@pytest.mark.parametrize("bf16, channels_last", [(False, False), (True, True)])
def test_the_throughput_epoch_runs_and_counts_images(bf16, channels_last):
    ips = gpu_check.throughput("cpu", bf16, channels_last, images=192, batch=64, model="wrn10_1")
    assert 0 < ips < 1e6


def test_the_search_row_says_when_the_data_is_missing(tmp_path):
    result, detail = gpu_check.search(str(tmp_path / "nowhere"))
    assert result == "skipped" and "--dataroot" in detail


def test_the_latency_row_gives_a_range_and_the_table_s_error():
    result, detail = gpu_check.latency("cpu", 2, min_run_time=0.005, image_size=8)
    lo, hi = (float(x) for x in result.removesuffix(" ms").split("-"))
    assert 0 < lo < hi and "mean relative error" in detail and "over 5 networks" in detail

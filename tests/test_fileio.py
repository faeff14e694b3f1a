"""One writer per run directory: claim_dir's atomic creation and its flock."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from awsaa.errors import AWSAAError
from awsaa.fileio import LOCK_NAME, claim_dir, release_dirs


def test_of_two_claims_of_a_new_directory_one_wins(tmp_path):
    run = tmp_path / "runs" / "x"
    try:
        claim_dir(run, "run directory", new=True)
        with pytest.raises(AWSAAError, match="already exists"):
            claim_dir(run, "run directory", new=True)
    finally:
        release_dirs()


def test_a_held_lock_refuses_a_second_writer_and_dies_with_its_holder(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from awsaa.fileio import claim_dir
        claim_dir({str(run)!r}, "run directory", new=True)
        print("held", flush=True)
        time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(AWSAAError, match=f"in use by pid {holder.pid} on "):
            claim_dir(run, "run directory", new=False)
    finally:
        holder.kill()
        holder.wait()
    # the holder was SIGKILLed: its lock file stays, its lock does not
    assert (run / LOCK_NAME).exists()
    try:
        claim_dir(run, "run directory", new=False)
    finally:
        release_dirs()


def test_release_lets_the_same_process_claim_again(tmp_path):
    run = tmp_path / "run"
    claim_dir(run, "run directory", new=True)
    release_dirs()
    claim_dir(run, "run directory", new=False)
    release_dirs()


def test_the_reaper_kills_by_token_what_it_never_saw_and_spares_the_rest(tmp_path):
    """A process that carries the driver's token but was never recorded below it (started a
    moment before the driver died, or reparented) is killed; one without the token is not."""
    import os
    import signal
    import time

    from awsaa.distributed import reaper

    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    env = {**os.environ, reaper.TOKEN_VAR: "t0ken"}
    marked = subprocess.Popen(["sleep", "600"], env=env, start_new_session=True)
    other = subprocess.Popen(["sleep", "600"], env={**os.environ, reaper.TOKEN_VAR: "other"}, start_new_session=True)
    watcher = subprocess.Popen([sys.executable, "-I", reaper.__file__, str(driver.pid), "t0ken"])
    try:
        time.sleep(1)  # let the watcher take its first look (nothing depends on how soon)
        driver.kill()
        driver.wait()
        assert watcher.wait(timeout=120) == 0
        assert marked.wait(timeout=10) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        for p in (driver, marked, other, watcher):
            if p.poll() is None:
                p.kill()
                p.wait()

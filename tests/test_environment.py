"""The environment a user's shell may leave behind (issue 25, "the environment")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from awsaa import faultplan

PLAN_LIKE = {"worker": [{"loop": 0, "traj": 1, "at": "start", "do": "kill"}]}


@pytest.mark.parametrize("content", [json.dumps(PLAN_LIKE).encode(), b"\x00\xff\xfe binary", b"not json {",
                                     b"[1, 2]", json.dumps({"format": "other", **PLAN_LIKE}).encode(), None])
def test_a_fault_plan_variable_left_pointing_elsewhere_does_nothing(tmp_path, monkeypatch, content):
    """$AWSAA_FAULT_PLAN naming a file that is not a plan (a plan-shaped JSON without the plan's
    format, a binary file, a directory): no entries, nothing raises."""
    target = tmp_path / "thing"
    if content is None:
        target.mkdir()
    else:
        target.write_bytes(content)
    monkeypatch.setenv(faultplan.ENV, str(target))
    assert faultplan._entries("worker") == []


def test_a_plan_shaped_file_without_the_format_kills_nothing(tmp_path):
    """In a real process that reaches the very point the plan-shaped file names."""
    target = tmp_path / "thing.json"
    target.write_text(json.dumps(PLAN_LIKE))
    env = {**os.environ, "AWSAA_FAULT_PLAN": str(target)}
    r = subprocess.run([sys.executable, "-c", "from awsaa import faultplan; "
                        "faultplan.point('worker', loop=0, traj=1, at='start'); print('alive')"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "alive", r.stderr
    assert not (tmp_path / "thing.fired").exists()


def test_a_plan_with_its_format_still_fires(tmp_path, monkeypatch):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"format": faultplan.FORMAT, **PLAN_LIKE}))
    monkeypatch.setenv(faultplan.ENV, str(plan))
    assert faultplan._entries("worker") == PLAN_LIKE["worker"]


def test_a_deleted_working_directory_is_one_line_not_a_fatal_error_from_mkl(tmp_path):
    """torch's MKL died with "Intel oneMKL FATAL ERROR" and exit 2, awsaa's usage-error code."""
    gone = tmp_path / "gone"
    gone.mkdir()
    tool = Path(sys.executable).parent / "awsaa-policy"  # as a user runs it (python -m adds the cwd to sys.path)
    r = subprocess.run([str(tool), "show", "aws_digits"], cwd=gone, preexec_fn=lambda: os.rmdir(os.getcwd()),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "the working directory no longer exists" in r.stderr and "FATAL" not in r.stderr


def test_a_stage1_cache_the_storage_refuses_costs_the_cache_not_the_search(tmp_path, monkeypatch):
    """A full disk (torch reports it as a RuntimeError), or a pretrained/ that cannot be made:
    the search goes on with stage 1 in memory, and says so."""
    from awsaa.search import runs as driver

    shared = {"model": {}, "val_acc": 90.0, "lr": 0.01}
    blocked = tmp_path / "file"
    blocked.write_text("x")
    said = driver.cache_stage1(blocked / "pretrained" / "h.pt", shared)
    assert said.startswith("NOT cached (") and "goes on with the weights in memory" in said

    def full(path, state):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(driver, "save_checkpoint", full)
    said = driver.cache_stage1(tmp_path / "pretrained" / "h.pt", shared)
    assert "NOT cached ([enforce fail" in said and "\n" not in said
    monkeypatch.undo()
    assert driver.cache_stage1(tmp_path / "ok" / "h.pt", shared) == f"saved {tmp_path / 'ok' / 'h.pt'}"


def test_a_finished_run_on_a_read_only_mount_says_its_export_cannot_be_rebuilt(tmp_path, monkeypatch, capsys):
    """--resume of a finished run whose policy.json was removed rebuilds it from state.pt; on a
    read-only mount that write fails: one line, not an EROFS traceback."""
    import errno

    from test_bad_input import finished_run

    from awsaa.cli.search import main
    from awsaa.search.state import SearchState

    run = finished_run(tmp_path)
    (run / "policy.json").unlink()

    def read_only(self, only=None):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(SearchState, "export", read_only)
    assert main(["--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already finished all 1 loops, but policy.json could not be rebuilt" in err
    assert "Read-only file system" in err


@pytest.mark.faults  # a real search under Ray: the fault suite's kind of time
def test_a_search_runs_with_home_unusable_c_locale_and_a_non_ascii_storage(tmp_path):
    """HOME=/dev/null and LC_ALL=C, with the run stored under a non-ASCII path: the search runs
    to its end and its result is where it says."""
    import yaml
    from helpers import tiny_search

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_search(loops=1, pretrain={"epochs": 2, "stop_epoch": 1},
                                                 finetune={"epochs": 1, "reward_top_k": 1})))
    storage = tmp_path / "dätä ünï"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HOME": "/dev/null", "LC_ALL": "C"}
    env.pop("LANG", None)
    r = subprocess.run([sys.executable, "-m", "awsaa.cli.search", "-c", str(config), "--storage", str(storage),
                        "--name", "run"], env=env, capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    assert (storage / "run" / "policy.json").is_file()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_while_a_tool_starts_is_one_line(tmp_path, signum):
    """Ctrl-C in the first second (while torch imports) was a KeyboardInterrupt traceback from
    inside an import. Now one line and 128 + the signal's number. The signal is sent once the
    tool's start handlers are in place (the kernel shows SIGTERM caught, which Python alone does
    not do) and torch is still to be imported: no race with the machine's speed."""
    tool = Path(sys.executable).parent / "awsaa-search"
    proc = subprocess.Popen([str(tool), "-c", "configs/search/digits.yaml", "--print-config"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not _catches(proc.pid, signal.SIGTERM):
        assert proc.poll() is None and time.time() < deadline, "the tool never installed its start handlers"
        time.sleep(0.001)
    proc.send_signal(signum)
    err = proc.communicate(timeout=60)[1]
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, err
    assert err == f"awsaa-search: interrupted ({name}) while starting\n"


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (the SigCgt mask of /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) >> (signum - 1) & 1)


@pytest.mark.parametrize("signame", ["sigterm", "sigint"])
def test_a_stop_signal_between_the_tools_start_and_its_ray_is_one_line(tmp_path, fault_plan, signame):
    """From its main's first line the tool's own handlers are in place: a stop signal while it
    reads its config (before Ray is up) is one line and 128 + its number. With SIGTERM's
    default there, the command died silently (-15); seen by hand at 2.4-2.7 s into a search.
    The fault plan sends the signal from inside that window (``tool_main``)."""
    fault_plan({"tool_main": [{"do": signame}]})
    tool = Path(sys.executable).parent / "awsaa-search"
    proc = subprocess.Popen([str(tool), "-c", "configs/search/digits.yaml", "--storage", str(tmp_path / "s")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = proc.communicate(timeout=120)[1]
    signum = signal.SIGTERM if signame == "sigterm" else signal.SIGINT
    sent = faultplan.fired("tool_main")
    assert sent is not None and sent["pid"] == proc.pid, err
    assert proc.returncode == 128 + signum, err
    assert err == f"awsaa-search: interrupted ({signal.Signals(signum).name})\n"
    assert not (tmp_path / "s").exists()  # stopped before it made anything


def test_the_start_handler_says_when_a_signal_came_after_the_tools_main():
    """The start handlers are put back for the interpreter's exit (Ray's shutdown takes a
    second); a signal then says so, not "while starting"."""
    code = ("import os, signal, sys; sys.argv[0] = 'awsaa-policy'\n"
            "from awsaa.cli.common import run_main\n"
            "assert run_main(lambda: 0, 'awsaa-policy') == 0\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "import time; time.sleep(30)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr == "awsaa-policy: interrupted (SIGTERM) while exiting\n"

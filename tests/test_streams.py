"""Standard output that goes away, fills or was never there (issue 25, "exit status and output
streams"): the output stops, the work does not; a command whose output is its result says it
could not write it. In-process with streams that fail like a pipe or a full disk, and in fresh
processes for a closed descriptor and a real `| head -1`."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys

import pytest

from awsaa.cli.policy import main as policy_main
from awsaa.cli.search import main as search_main

ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}


class Failing(io.StringIO):
    def __init__(self, error: OSError, after: int = 0) -> None:
        super().__init__()
        self.error, self.after = error, after

    def write(self, text: str) -> int:
        if self.after <= 0:
            raise self.error
        self.after -= 1
        return super().write(text)

    def flush(self) -> None:
        if self.after <= 0:
            raise self.error


@pytest.mark.parametrize(("error", "rc", "says"), [
    (BrokenPipeError(errno.EPIPE, "Broken pipe"), 0, ""),  # `| head`: the reader has what it wanted
    (OSError(errno.ENOSPC, "No space left on device"), 2, "cannot write to standard output: No space left"),
])
def test_a_command_whose_output_is_its_result_says_when_it_could_not_write_it(monkeypatch, capsys, error, rc, says):
    for argv, main in ((["show", "aws_digits"], policy_main),
                       (["-c", "configs/search/digits.yaml", "--print-config"], search_main)):
        monkeypatch.setattr(sys, "stdout", Failing(error, after=1))
        assert main(argv) == rc
        err = capsys.readouterr().err
        assert (says in err and err.count("\n") == 1) if says else err == ""


@pytest.mark.parametrize("argv", [["awsaa.cli.policy", "show", "aws_digits"],
                                  ["awsaa.cli.train", "-c", "configs/train/digits.yaml", "--print-config"]])
def test_a_closed_standard_output_is_an_error_not_an_attribute_error(argv):
    r = subprocess.run([sys.executable, "-m", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       env=ENV, pass_fds=(), timeout=120, preexec_fn=lambda: os.close(1))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().endswith("cannot write to standard output: it was closed when the command started (>&-)")


@pytest.mark.faults  # a real training under Ray: the fault suite's kind of time
def test_training_piped_into_head_runs_to_its_end(tmp_path):
    """`awsaa-train ... | head -1` was a BrokenPipe traceback: now the training runs to its end and
    exits 0, its lines after the first going nowhere."""
    cmd = (f"{sys.executable} -m awsaa.cli.train -c configs/train/digits.yaml --storage {tmp_path} --name t "
           f"--epochs 2 --set optim.warmup_epochs=1 | head -1")
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    summary = (tmp_path / "t" / "summary.json").read_text()
    assert '"status": "done"' in summary and '"epochs_done": 2' in summary

"""awsaa-train on Ray Tune: trials per seed, the table, resume, a killed trial, DDP, bad input."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fault_accounting import count

from awsaa.cli.train import main

QUICK = "configs/train/quick_fmnist.yaml"
TINY = ["--set", "train_size=256", "test_size=200", "eval_batch_size=500"]


def results(trial_dir: Path) -> list[dict]:
    f = trial_dir / "result.json"
    if not f.exists():
        return []
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]


def test_experiment_table_resume_and_eval(tmp_path, capsys, ray_local):
    args = ["-c", QUICK, "--epochs", "2", "--seeds", "0", "1", "--cpus-per-trial", "1", "--storage", str(tmp_path),
            *TINY]  # the two trials side by side
    assert main(args) == 0
    out = capsys.readouterr().out
    exp = tmp_path / "quick_fmnist-fashion_mnist-cutout"
    for seed in (0, 1):
        label = f"quick_fmnist-fashion_mnist-cutout-seed{seed}"
        assert f"{label}  epoch   1/2" in out and f"{label}  epoch   2/2" in out
        rows = results(exp / label)
        assert [r["epoch"] for r in rows] == [1, 2]
        table_line = next(line for line in out.splitlines() if line.startswith(label) and "done" in line)
        assert f"{rows[-1]['test_error']:.2f}%" in table_line  # the final epoch's error, as reported
        assert list((exp / label).glob("events.out.tfevents.*"))  # TensorBoard
    summary = json.loads((exp / "summary.json").read_text())
    assert {s["status"] for s in summary} == {"done"} and "mean ± std over 2 seeds" in out

    # the same command again refuses to overwrite; --resume of a finished experiment changes nothing
    assert main(args) == 2
    assert "already exists; pass --resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert [r["epoch"] for r in results(exp / "quick_fmnist-fashion_mnist-cutout-seed0")] == [1, 2]
    capsys.readouterr()
    # a different seed list on --resume is refused
    assert main(["-c", QUICK, "--epochs", "2", "--seeds", "0", "--storage", str(tmp_path), *TINY, "--resume"]) == 2
    assert "differ from those" in capsys.readouterr().err

    ckpt = summary[0]["checkpoint"]
    assert main(["-c", QUICK, "--only-eval", "--save", ckpt, *TINY]) == 0
    line = capsys.readouterr().out
    assert f"top-1 error {summary[0]['final_test_error']:.2f}%" in line  # same weights, same test subset


@pytest.mark.faults  # a real kill: the fault suite's kind (RELIABILITY.md)
def test_a_killed_trial_resumes_from_its_last_epoch(tmp_path, capsys, ray_local, fault_plan):
    """The trial's process SIGKILLs itself right after epoch 2's checkpoint (awsaa/faultplan.py):
    Tune restarts it from that checkpoint in a new process and every epoch is done once."""
    from awsaa import faultplan

    fault_plan({"train": [{"epoch": 2, "do": "kill"}]})
    trial = tmp_path / "crash" / "quick_fmnist-fashion_mnist-cutout-seed0"
    assert main(["-c", QUICK, "--epochs", "6", "--name", "crash", "--storage", str(tmp_path), *TINY]) == 0
    killed = faultplan.fired("train-2")
    assert killed, "the trial was never killed"
    rows = results(trial)
    # Every epoch trained once: none repeated, none lost, the run resumed after epoch 2's
    # checkpoint. Epoch 2's metrics row can die with the process that reported it: Tune's
    # report hands the row to the driver asynchronously, and under load the SIGKILL can land
    # before the driver wrote it (seen once, with the machine saturated); the checkpoint it
    # carried was saved, which is what the resume below proves.
    epochs = [r["epoch"] for r in rows]
    assert epochs in ([1, 2, 3, 4, 5, 6], [1, 3, 4, 5, 6]), epochs
    assert {r["pid"] for r in rows if r["epoch"] <= 2} == {killed["pid"]}
    assert killed["pid"] not in {r["pid"] for r in rows if r["epoch"] > 2}  # a new process
    out = capsys.readouterr().out
    assert "failed; Tune restarts it from its last checkpoint (retry 1 of 3)" in out and "done       6/6" in out
    count("training trial SIGKILL")


@pytest.mark.slow
def test_data_parallel_trial_with_two_gloo_workers(tmp_path):
    """--gpus-per-trial 2 on a CPU machine with 2 logical GPUs: a TorchTrainer of 2 gloo workers."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    r = subprocess.run([sys.executable, "-m", "awsaa.cli.train", "-c", QUICK, "--epochs", "2", "--storage",
                        str(tmp_path), "--num-gpus", "2", "--gpus-per-trial", "2", *TINY],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = results(tmp_path / "quick_fmnist-fashion_mnist-cutout" / "quick_fmnist-fashion_mnist-cutout-seed0")
    assert [row["epoch"] for row in rows] == [1, 2] and all(row["world_size"] == 2 for row in rows)
    assert "done       2/2" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["-c", "nope.yaml"], "config file nope.yaml does not exist"),
    (["-c", QUICK, "--aug", "bogus"], "unknown aug 'bogus'"),
    (["-c", QUICK, "--dataset", "mnist"], "dataset 'mnist' is unknown"),
    (["-c", QUICK, "--set", "model=vgg"], "model 'vgg' is unknown"),
    (["-c", QUICK, "--dataroot", "/nonexistent"], "dataroot /nonexistent does not exist"),
    (["-c", QUICK, "--set", "epochs=0"], "epochs must be >= 1"),
    (["-c", QUICK, "--only-eval"], "--only-eval needs --save"),
    (["-c", QUICK, "--only-eval", "--save", "/nonexistent.pt"], "checkpoint /nonexistent.pt does not exist"),
])
def test_bad_input_is_one_line_before_any_work(tmp_path, capsys, args, message):
    assert main([*args, "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing written


def test_bad_policy_file_and_corrupt_checkpoint(tmp_path, capsys):
    bad = tmp_path / "policy.json"
    bad.write_text('{"format": "awsaa.policy", "version": 1, "ops": ["Invert"], "probs": [[0.5]]}')
    assert main(["-c", QUICK, "--aug", str(bad), "--storage", str(tmp_path / "runs")]) == 2
    assert "probs sum to 0.5" in capsys.readouterr().err
    ckpt = tmp_path / "trainer.pt"
    ckpt.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["-c", QUICK, "--only-eval", "--save", str(ckpt), *TINY]) == 2
    assert "is corrupt or not a torch checkpoint" in capsys.readouterr().err
    assert ckpt.read_bytes() == b"PK\x03\x04 not really a zip" and not (tmp_path / "runs").exists()


def test_policy_files_get_distinct_labels():
    from awsaa.cli.train import aug_labels

    labels = aug_labels(["none", "/r/runA/policy.json", "/r/runB/policy.json", "/r/x/best.json", "/q/none.json"])
    assert labels == {"none": "none", "/r/runA/policy.json": "runA-policy", "/r/runB/policy.json": "runB-policy",
                      "/r/x/best.json": "best", "/q/none.json": "q-none"}
    assert len(set(aug_labels(["/a/s/p.json", "/b/s/p.json"]).values())) == 2


def test_the_storage_is_named_when_it_is_not_the_default(monkeypatch):
    from awsaa.distributed.raycluster import storage_line

    monkeypatch.delenv("AWSAA_STORAGE", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert storage_line("awsaa-train", "train", None) is None
    monkeypatch.setenv("AWSAA_STORAGE", "/shared/runs")
    assert storage_line("awsaa-train", "train", None) == \
        "awsaa-train: storage /shared/runs/train ($AWSAA_STORAGE; --storage to choose)"
    assert storage_line("awsaa-train", "train", "/elsewhere") is None


def test_a_trials_process_quiets_tunes_restore_line_before_tune_restores_it():
    """A resumed trial's "Restored on <ip> from checkpoint: ..." is Tune's INFO line, logged in
    the trial's process before our code runs. That process loads the trainable by reference to
    this module, and importing the module (in a fresh interpreter, as a worker does) leaves that
    logger below INFO. The end-to-end check is the fault suite's Ctrl-C-then-resume test."""
    import subprocess
    import sys

    from ray import cloudpickle  # what Ray pickles a trainable with
    from ray.tune.trainable import trainable

    from awsaa.distributed import train_tune

    assert trainable.logger.name == train_tune.RESTORE_LOGGER  # the logger Tune really uses
    for fn in (train_tune.train_trial, train_tune.train_trial_ddp):
        assert b"awsaa.distributed.train_tune" in cloudpickle.dumps(fn)  # by reference: the import runs there
    code = ("import logging, awsaa.distributed.train_tune as t; "
            "print(logging.getLogger(t.RESTORE_LOGGER).isEnabledFor(logging.INFO), "
            "logging.getLogger(t.RESTORE_LOGGER).isEnabledFor(logging.WARNING))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["False", "True"]


def test_tune_prints_no_raw_warning_of_its_own_on_a_stop():
    """A stop before some trials started: Tune's results warned "Failed to fetch metrics ...
    both result.json and progress.csv were not found at <path>" for each, raw, above our one
    line that says how to continue. The loggers Tune uses for that and for its own resume advice
    are quiet below errors once awsaa-train has set Tune up."""
    from ray.tune import tune
    from ray.tune.analysis import experiment_analysis

    from awsaa.distributed.train_tune import quiet_tune

    quiet_tune()
    for module in (tune, experiment_analysis):
        assert not module.logger.isEnabledFor(logging.WARNING), module.__name__
        assert module.logger.isEnabledFor(logging.ERROR), module.__name__

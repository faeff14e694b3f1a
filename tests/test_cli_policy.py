import subprocess
import sys
from pathlib import Path

import pytest
import torch

from awsaa import Policy, SearchSpace
from awsaa.cli.policy import main

SPACE = SearchSpace.default()


def peaked_policy() -> Policy:
    probs = torch.full((36, 36), 0.5 / 1295, dtype=torch.float64)
    probs[SPACE.index("Rotate_9"), SPACE.index("Invert")] = 0.5
    return Policy(SPACE, probs, meta={"loop": 12})


def test_show_prints_top_subpolicies_and_entropy(tmp_path, capsys):
    peaked_policy().save(tmp_path / "p.json")
    assert main(["show", str(tmp_path / "p.json"), "--top", "3"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "entropy" in lines[1]
    first = next(line for line in lines if line.strip().startswith("1 "))
    assert "0.50000" in first and "Rotate(±30) -> Invert" in first
    assert sum(1 for line in lines if line.strip()[:1].isdigit()) == 3
    assert "loop=12" in out
    families = next(line for line in lines if line.startswith("KL from uniform"))
    # half the mass is on (Rotate_9, Invert): Invert alone holds >= 0.25 of the op mass, 9x its uniform 1/36
    destructive = float(families.split("destructive ")[1].split("x")[0])
    assert destructive >= 0.25 / (4 / 36)


def test_plot_writes_a_png(tmp_path, capsys):
    peaked_policy().save(tmp_path / "p.json")
    out = tmp_path / "figs" / "heat.png"
    assert main(["plot", str(tmp_path / "p.json"), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert capsys.readouterr().out.strip() == str(out)


def test_gallery_of_all_ops(tmp_path):
    out = tmp_path / "ops.png"
    assert main(["gallery", "-o", str(out), "--images", "2"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("content", ["{", '{"format": "awsaa.policy", "version": 9}', "[]"])
def test_bad_policy_file_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = tmp_path / "heat.png"
    out.write_bytes(b"previous figure")
    for args in (["show", str(bad)], ["plot", str(bad), "-o", str(out)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("awsaa-policy: error: policy file")
    assert out.read_bytes() == b"previous figure" and bad.read_text() == content


def test_console_script_exit_status(tmp_path):
    """The installed entry point itself: status 2, one line, no traceback."""
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    exe = Path(sys.executable).with_name("awsaa-policy")
    r = subprocess.run([str(exe), "show", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr

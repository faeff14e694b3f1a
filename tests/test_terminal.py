"""No untrusted text reaches the terminal raw: escape sequences, line breaks and bidi controls
from policy files and file names are printed as visible escapes."""

import re

import pytest

from awsaa import Policy
from awsaa.cli.policy import main
from awsaa.terminal import shown

CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

HOSTILE = {
    "csi": "a\x1b[2Jb",
    "colour": "\x1b[32mverdict: moved\x1b[0m",
    "osc8": "\x1b]8;;http://x\x1b\\text\x1b]8;;\x1b\\",
    "title": "\x1b]0;pwned\x07",
    "cr": "ok\rverdict: moved",
    "newline": "ok\nverdict: moved",
    "c1 csi": "\x9b31mred",
    "nul": "a\x00b",
    "del": "a\x7fb",
    "line separator": "a\u2028verdict: moved",
    "bidi": "abc\u202edef",
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_controls_become_visible_escapes(text):
    out = shown(text)
    assert not CONTROLS.search(out) and len(out.splitlines()) == 1
    for word in re.findall(r"[a-z:]{3,}", CONTROLS.sub(" ", text)):
        assert word in out  # the printable text stays


def test_escapes_read_like_python():
    assert shown("a\x1b[2Jb\r\n\t") == "a\\x1b[2Jb\\r\\n\\t"
    assert shown("\x9b\x00\x7f\u2028\u202e\u2066") == "\\x9b\\x00\\x7f\\u2028\\u202e\\u2066"


@pytest.mark.parametrize("text", ["plain ASCII: policy file C:\\runs\\p.json does not exist (42%)",
                                  "é 数据 ±30° → ✓", ""])
def test_printable_text_is_unchanged(text):
    assert shown(text) == text


def test_non_strings_are_converted():
    assert shown(3.5) == "3.5" and shown({"k": [1]}) == "{'k': [1]}"


def test_length_is_bounded_and_cut_text_ends_in_an_ellipsis():
    assert shown("x" * 10, limit=10) == "x" * 10
    assert shown("x" * 11, limit=10) == "x" * 9 + "…"
    assert len(shown("\x1b" * 10_000)) <= 300
    assert len(shown("y" * 10_000_000, limit=5)) == 5


@pytest.mark.parametrize("limit", range(1, 14))
def test_a_cut_never_splits_an_escape(limit):
    out = shown("ab\x1b\x1b\x1bcd", limit=limit)
    assert len(out) <= limit
    if out != "ab\\x1b\\x1b\\x1bcd":
        body = out.removesuffix("…")
        assert out.endswith("…") and "ab\\x1b\\x1b\\x1bcd".startswith(body)
        assert re.fullmatch(r"a?b?(\\x1b)*", body)  # whole escapes only


def test_limit_must_be_positive():
    with pytest.raises(ValueError):
        shown("x", limit=0)


def _show(path, capsys) -> str:
    assert main(["show", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def test_show_prints_hostile_meta_escaped_on_its_own_rows(tmp_path, capsys):
    uniform = Policy.uniform()
    plain = Policy(uniform.space, uniform.probs(), meta={f"key{i}": f"value{i}" for i in range(2 * len(HOSTILE))})
    plain.save(tmp_path / "plain.json")
    hostile = Policy(uniform.space, uniform.probs(), meta={**HOSTILE, **{v: k for k, v in HOSTILE.items()}})
    hostile.save(tmp_path / "hostile.json")
    expected = _show(tmp_path / "plain.json", capsys)
    out = _show(tmp_path / "hostile.json", capsys)
    assert not CONTROLS.search(out.replace("\n", ""))
    assert len(out.splitlines()) == len(expected.splitlines())
    assert not any(line.lstrip().startswith("verdict") for line in out.splitlines())
    meta = next(line for line in out.splitlines() if line.startswith("meta: "))
    assert "csi=a\\x1b[2Jb" in meta and "title=\\x1b]0;pwned\\x07" in meta and "\\u202edef=bidi" in meta


def test_an_error_naming_a_hostile_file_name_is_escaped(tmp_path, capsys):
    assert main(["show", str(tmp_path / "a\x1b[31mb\nverdict: moved.json")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    # errors.py has already made the newline a space: the line holds the ESC escaped
    assert "does not exist" in captured.err and "a\\x1b[31mb verdict: moved.json" in captured.err
    assert not CONTROLS.search(captured.err.rstrip("\n"))


def test_a_usage_error_quoting_an_argument_is_escaped(capsys):
    assert main(["show", "p.json", "--top", "3", "\x1b]0;pwned\x07"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\\x1b]0;pwned\\x07" in err and not CONTROLS.search(err.rstrip("\n"))


def test_an_error_raised_on_a_ray_worker_is_its_own_one_line(capsys):
    """A user error raised in a Ray task reaches the driver wrapped by Ray (a subclass of it),
    whose text is the remote traceback with colour codes; the tools print the error itself."""
    from ray.exceptions import RayTaskError

    from awsaa.cli.common import run_main
    from awsaa.errors import AWSAAError

    remote = ("Traceback (most recent call last):\n  File \"worker.py\", line 1, in f\n"
              "\x1b[36mawsaa.errors.AWSAAError\x1b[39m: train_size 100000 exceeds the 60000 training images")

    def fail():
        raise RayTaskError("f", remote, AWSAAError("train_size 100000 exceeds the 60000 training images"),
                           proctitle="x", pid=1, ip="127.0.0.1").as_instanceof_cause()

    assert run_main(fail, "awsaa-search") == 2
    err = capsys.readouterr().err
    assert err == "awsaa-search: error: train_size 100000 exceeds the 60000 training images\n"

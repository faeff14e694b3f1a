"""Install awsaa and its pinned dependencies into the running interpreter's venv.

`make setup` runs this with `.venv/bin/python`. pip unpacks torch's 6 GB of wheels on one
core (112 s here); uv installs the same versions in parallel (22-31 s), so the set-up uses
uv where it can. uv does not read pip's configuration, so the package sources pip is
configured with (its files and PIP_* variables: index, extra indexes, find-links,
constraints) are handed to uv as flags, and uv takes the best version across all of them,
as pip does. Where uv cannot be installed or fails, pip installs everything, slower.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

UV = "uv==0.13.9"
ROOT = Path(__file__).resolve().parent.parent
TARGET = ".[dev]"
# pip's configuration keys that name package sources, and uv's flag for each.
SOURCES = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}
# The sections of `pip config list` (its files already merged) that `pip install` obeys,
# lowest precedence first: [global], then [install], then PIP_* variables.
LAYERS = ("global", "install", ":env:")


def pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def pip_sources() -> list[str]:
    """uv flags for the package sources in pip's configuration."""
    out = subprocess.run(pip("config", "list"), capture_output=True, text=True, check=True).stdout
    return uv_flags(out)


def uv_flags(config_list: str) -> list[str]:
    """uv flags for the package sources in `pip config list`'s output; where a key is set
    in several layers, the one pip obeys."""
    chosen: dict[str, tuple[int, str]] = {}
    for line in config_list.splitlines():
        name, sep, value = line.partition("=")
        layer, dot, key = name.rpartition(".")
        if not (sep and dot) or key not in SOURCES or layer not in LAYERS:
            continue
        rank = LAYERS.index(layer)
        if key not in chosen or rank >= chosen[key][0]:
            chosen[key] = (rank, value.strip().strip("'\""))
    flags = []
    for key, (_, value) in chosen.items():
        for item in value.split():
            flags += [SOURCES[key], item]
    return flags


def with_uv() -> bool:
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if subprocess.run(pip("install", "-q", UV), **quiet).returncode != 0:
        print("could not install uv; installing with pip (slower)")
        return False
    uv = Path(sys.executable).parent / "uv"
    try:
        sources = pip_sources()
    except (OSError, subprocess.CalledProcessError):
        print("could not read pip's package sources; installing with pip (slower)")
        return False
    cmd = [str(uv), "pip", "install", "-q", "--python", sys.executable,
           "--index-strategy", "unsafe-best-match", *sources, "-e", TARGET]
    if subprocess.run(cmd, cwd=ROOT, env={**os.environ, "VIRTUAL_ENV": ""}).returncode != 0:
        print("uv could not install the dependencies; installing with pip (slower)")
        return False
    return True


def main() -> int:
    if with_uv():
        return 0
    done = subprocess.run(pip("install", "--no-compile", "-q", "-e", TARGET), cwd=ROOT)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())

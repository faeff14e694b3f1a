"""Where a command's CPU goes, process by process, Ray's included.

    sudo python tools/cpu_profile.py OUT.json CMD...

Runs CMD in a fresh cgroup (v1 ``cpuacct``, which needs root), so every process it starts is
counted, however it detaches: a local Ray's daemons, its workers, a reaper. Twice a second it
reads each process's CPU time and command line (the last one seen, after Ray renames its
workers ``ray::...``); at the end it prints the cgroup's total, then CPU-seconds by kind of
process, and writes every process to OUT.json. A process that lived less than half a second
can be missed (the total still counts it). CPU time, unlike wall time, changes little when
something else runs beside the command, so two profiles taken on a busy machine compare.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CGROUPS = Path("/sys/fs/cgroup/cpuacct")
# the first of these a command line contains names its kind (Ray's workers by their actor class)
KINDS = ("raylet", "gcs_server", "DashboardAgent", "dashboard/agent.py", "dashboard.py", "runtime_env",
         "log_monitor", "monitor.py", "reaper.py", "ray::IDLE", "_Worker", "_Controller", "JobSupervisor",
         "ImplicitFunc", "RayTrainWorker", "awsaa-search", "awsaa.cli.search", "awsaa-train", "awsaa.cli.train",
         "pytest", "ray::")


def kind(cmdline: str) -> str:
    return next((k for k in KINDS if k in cmdline), cmdline[:60])


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out, cmd = Path(sys.argv[1]), sys.argv[2:]
    group = CGROUPS / f"awsaa-profile-{os.getpid()}"
    try:
        group.mkdir()
    except OSError as e:
        print(f"cpu_profile: error: cannot make a cgroup under {CGROUPS} (root and cgroup v1 cpuacct needed): "
              f"{e.strerror}", file=sys.stderr)
        return 2
    hz = os.sysconf("SC_CLK_TCK")
    seen: dict[tuple[str, str], list] = {}  # (pid, start time) -> [CPU seconds, command line]

    def sample() -> None:
        for pid in (group / "cgroup.procs").read_text().split():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            rest = stat[stat.rindex(")") + 2:].split()
            entry = seen.setdefault((pid, rest[19]), [0.0, ""])
            entry[0] = (int(rest[11]) + int(rest[12])) / hz
            if (cmdline and not ("setup_worker.py" in cmdline or "default_worker.py" in cmdline)) or not entry[1]:
                entry[1] = cmdline[:200]

    t0 = time.time()
    try:
        proc = subprocess.Popen(cmd, preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())))
    except OSError as e:
        group.rmdir()
        print(f"cpu_profile: error: cannot run {cmd[0]}: {e.strerror}", file=sys.stderr)
        return 2
    while proc.poll() is None:
        sample()
        time.sleep(0.5)
    wall = time.time() - t0
    time.sleep(1)  # what the command left behind, still running
    sample()
    total = int((group / "cpuacct.usage").read_text()) / 1e9
    by_kind: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    for cpu, cmdline in seen.values():
        k = kind(cmdline)
        by_kind[k] += cpu
        count[k] += 1
    print(f"wall {wall:.0f} s, CPU {total:.1f} s in all, {sum(by_kind.values()):.1f} s seen by process, "
          f"exit {proc.returncode}")
    for k, cpu in by_kind.most_common(25):
        print(f"{cpu:8.1f} s  {count[k]:4d} processes  {k}")
    out.write_text(json.dumps({"command": cmd, "wall_s": wall, "cpu_s": total,
                               "processes": [[pid, start, cpu, c] for (pid, start), (cpu, c) in seen.items()]}))
    left = (group / "cgroup.procs").read_text().split()
    if left:
        print(f"{len(left)} processes still running: {' '.join(left)}", file=sys.stderr)
    else:
        group.rmdir()
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())

"""``awsaa-search`` and ``awsaa-train`` submit themselves as Ray jobs when ``--address`` is
the cluster's Jobs/dashboard URL (``http://HEAD:8265``).

The job runs the same command on the head, without ``--address`` (inside a job Ray sets
``RAY_ADDRESS``, and the tools join that cluster). Its runtime environment carries only
what the job needs: a working directory holding the config files and policy files named on
the command line (the command refers to them by file name), and ``RAY_AUTH_MODE``. The
client prints the job id and the dashboard URL, follows the logs until the job ends
(``--no-wait`` detaches at once) and exits with the job's status: 0 when it succeeded.
Ctrl-C stops the following, not the job.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from awsaa.errors import AWSAAError
from awsaa.terminal import shown

# Ray's job client is imported inside the functions that use it: the command-line tools
# import this module to parse their arguments, and `--help` should not wait for Ray's import.

# Options (by argparse dest) whose values are files on this machine that the job needs
# (copied into its working dir), and options that only mean something here.
FILE_OPTIONS = ("config", "aug", "model")
LOCAL_ONLY = ("help", "address", "no_wait")


def is_job_address(address: str | None) -> bool:
    return address is not None and address.startswith(("http://", "https://"))


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _one_line(e: BaseException) -> str:
    lines = [ANSI.sub("", line).strip() for line in str(e).splitlines() if line.strip()]
    return (lines[-1] if lines else type(e).__name__)[:300]


def _tool_error(client, job_id: str, prog: str) -> str | None:
    """The tool's own one-line error from the job's log (worker lines may come after it)."""
    try:
        logs = client.get_job_logs(job_id)
    except Exception:
        return None
    for line in reversed(ANSI.sub("", logs).splitlines()):
        if line.startswith(f"{prog}: error: "):
            return line[len(f"{prog}: error: "):].strip()[:300]
        if line.startswith(f"{prog}: interrupted"):
            return line[len(f"{prog}: "):].strip()[:300]
    return None


def job_command(prog: str, parser: argparse.ArgumentParser, args: argparse.Namespace, workdir: Path) -> list[str]:
    """The command the job runs, rebuilt from the parsed arguments (so ``--aug=p.json`` and
    ``--aug p.json`` are the same thing): every option given a value other than its default,
    in its long spelling, without ``--address``/``--no-wait``; the files of ``FILE_OPTIONS``
    copied into ``workdir`` and named there by file name."""
    out: list[str] = [prog]
    for action in parser._actions:  # argparse has no public accessor for its options
        if not action.option_strings or action.dest in LOCAL_ONLY:
            continue
        value = getattr(args, action.dest, None)
        if value is None or value == action.default or value == []:
            continue
        option = max(action.option_strings, key=len)
        if action.nargs == 0:  # a flag
            out.append(option)
            continue
        values = [str(v) for v in (value if isinstance(value, list) else [value])]
        if action.dest in FILE_OPTIONS:
            values = [_copy(v, workdir) if Path(v).is_file() else v for v in values]
        if len(values) == 1 and action.nargs is None:
            out.append(f"{option}={values[0]}")  # one token: a value may start with '-'
        else:
            out += [option, *values]
    return out  # without --storage the job uses the head's $AWSAA_STORAGE, else ~/awsaa-runs


def _copy(path: str, workdir: Path) -> str:
    name = _unique_name(workdir, Path(path).name)
    shutil.copy2(path, workdir / name)
    return name


def _unique_name(workdir: Path, name: str) -> str:
    candidate, n = name, 1
    while (workdir / candidate).exists():
        n += 1
        candidate = f"{Path(name).stem}-{n}{Path(name).suffix}"
    return candidate


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    for name in list(logging.root.manager.loggerDict):
        if name == "ray" or name.startswith(("ray.dashboard", "ray._private")):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return JobSubmissionClient(address)
    except Exception as e:  # ConnectionError, AuthenticationError, RuntimeError, ...
        text = _one_line(e)
        if "auth" in type(e).__name__.lower() or "token" in text.lower() or "401" in text or "403" in text:
            raise AWSAAError(f"the Ray cluster at {address} refused the token: {text}") from None
        raise AWSAAError(f"cannot reach the Ray Jobs server at {address}: {text}") from None


def submit(prog: str, parser: argparse.ArgumentParser, args: argparse.Namespace, address: str,
           wait: bool = True) -> int:
    """Submit the command ``args`` parsed from as a job on the cluster at ``address``; follow it
    when ``wait``."""
    client = _client(address)
    with tempfile.TemporaryDirectory(prefix="awsaa-job-") as d:
        workdir = Path(d)
        command = job_command(prog, parser, args, workdir)
        runtime_env = {"working_dir": str(workdir),
                       "env_vars": {"RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token")}}
        for attempt in range(12):
            try:
                job_id = client.submit_job(entrypoint=shlex.join(command), runtime_env=runtime_env,
                                           metadata={"tool": prog})
                break
            except Exception as e:
                # A head that has just started answers "no available agent ... try again later".
                if "try again" in str(e) and attempt < 11:
                    time.sleep(5)
                    continue
                raise AWSAAError(f"the Ray Jobs server at {address} did not accept the job: {_one_line(e)}") from None
    print(f"{prog}: submitted job {job_id}: {shlex.join(command)}", flush=True)
    print(f"{prog}: dashboard: {address.rstrip('/')}/#/jobs/{job_id}   logs: ray job logs -f {job_id} "
          f"--address {address}", flush=True)
    if not wait:
        return 0
    try:
        asyncio.run(_follow(client, job_id))
    except KeyboardInterrupt:
        print(f"\n{prog}: stopped following; job {job_id} keeps running "
              f"(ray job logs -f {job_id} / ray job stop {job_id} --address {address})", file=sys.stderr)
        return 130
    return _final_status(client, job_id, prog)


async def _follow(client, job_id: str) -> None:
    async for lines in client.tail_job_logs(job_id):
        print(lines, end="", flush=True)


def _final_status(client, job_id: str, prog: str) -> int:
    from ray.job_submission import JobStatus

    info = client.get_job_info(job_id)
    if info.status == JobStatus.SUCCEEDED:
        print(f"{prog}: job {job_id} succeeded", flush=True)
        return 0
    detail = _tool_error(client, job_id, prog) or (_one_line(Exception(info.message)) if info.message
                                                     else "no message")
    status = str(getattr(info.status, "value", info.status)).lower()
    print(f"{prog}: error: job {job_id} {status}: {shown(detail, 1000)}", file=sys.stderr)
    return 1

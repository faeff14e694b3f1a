"""Starting or joining Ray, and what the cluster offers."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from awsaa import faultplan
from awsaa.distributed import reaper
from awsaa.errors import AWSAAError
from awsaa.signals import install_stop_signals

# Ray is imported inside the functions that use it (and only there): the command-line tools
# import this module to check their arguments, and `--help` or a bad argument should not
# wait for Ray's import.


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast, in one line, when ``host:port`` accepts no connection (``ray.init`` would
    keep retrying for minutes). ``auto`` and ``ray://`` addresses are left to Ray."""
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    if "://" in address:
        scheme = address.split("://", 1)[0]
        raise AWSAAError(f"Ray address {address[:100]!r}: unknown scheme {scheme[:20]!r}:// (use HOST:PORT, "
                         f"ray://HOST:PORT, or http://HEAD:8265 to submit a Ray job)")
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise AWSAAError(f"Ray address {address!r} is not HOST:PORT (e.g. 10.0.0.1:6379)")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise AWSAAError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def joining_a_cluster(address: str | None) -> bool:
    """Whether the tools will run on an existing cluster: an explicit address, or ``RAY_ADDRESS``
    (which Ray sets for a job's driver)."""
    return bool(address or os.environ.get("RAY_ADDRESS"))


def check_local_resources(address: str | None, asks: dict[str, float], num_gpus: int | None = None) -> None:
    """Before a local Ray starts: refuse, in one line, what this machine cannot provide (a
    local Ray would wait for it forever). ``asks`` maps the option that asks to its amount:
    ``{"workers.num_gpus": 1, ...}``, CPU and GPU options told apart by their names. A cluster
    is left alone: its autoscaler may add the nodes."""
    if joining_a_cluster(address):
        return
    cpus = os.cpu_count() or 1
    if num_gpus is None:
        import torch

        num_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for option, amount in asks.items():
        gpu = "gpu" in option.lower()
        have = num_gpus if gpu else cpus
        if amount and amount > have:
            kind = "GPU" if gpu else "CPU"
            raise AWSAAError(f"{option} {amount:g} asks for more {kind}s than this machine has ({have}): a local Ray "
                             f"would wait for them forever; ask for at most {have}, or run on a cluster (--address)")


def default_storage(kind: str):
    """Where runs live when ``--storage`` is not given: ``$AWSAA_STORAGE/<kind>`` (the cluster
    sets it to its shared file system), else ``~/awsaa-runs/<kind>`` inside a Ray job (whose
    working directory is temporary), else ``runs/<kind>`` here."""
    if os.environ.get("AWSAA_STORAGE"):
        return Path(os.environ["AWSAA_STORAGE"]).expanduser() / kind
    if os.environ.get("RAY_ADDRESS"):
        return Path("~/awsaa-runs").expanduser() / kind
    return Path("runs") / kind


def storage_line(prog: str, kind: str, given: str | None) -> str | None:
    """The line that says which storage a command uses when it is not ``runs/<kind>`` here
    by default (``$AWSAA_STORAGE`` or a Ray job chose it), else None."""
    if given:
        return None
    if os.environ.get("AWSAA_STORAGE"):
        why = "$AWSAA_STORAGE"
    elif os.environ.get("RAY_ADDRESS"):
        why = "inside a Ray job: $RAY_ADDRESS is set"
    else:
        return None
    return f"{prog}: storage {default_storage(kind).resolve()} ({why}; --storage to choose)"


def leave_job_working_dir(storage) -> None:
    """Inside a Ray job, move out of the job's working directory (Ray may delete it while
    the job runs, once no worker uses it) into ``storage``. Paths are absolute by then."""
    if os.environ.get("RAY_ADDRESS"):
        Path(storage).mkdir(parents=True, exist_ok=True)
        os.chdir(storage)


def init_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
             dashboard: bool = False, stop_signals: bool = False) -> None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``), or start a local one (no-op if
    Ray is already up; an address is still checked first: one that names no cluster is refused).

    From Python (the default) that is all: a plain ``ray.init``, no signal handler, mask,
    reaper or patch. ``stop_signals`` is for the command-line tools, in their main thread:
    SIGINT and SIGTERM are held while a local Ray starts, and
    :func:`~awsaa.signals.install_stop_signals` handles them once Ray is up, so a stop signal
    in that window ends the command in one line and leaves no Ray process behind; the local
    Ray's processes start with SIGTERM blocked (a SIGTERM to the command's process group then
    reaches the driver alone), a reaper kills what outlives the driver, and Ray's shutdown
    skips its graceful wait (:func:`_start_local`). The handlers are in place when this
    returns."""
    import ray

    command = stop_signals and threading.current_thread() is threading.main_thread()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:  # an address that names nothing is an error even where Ray is already up
        check_reachable(address)
    if ray.is_initialized():
        if command:
            install_stop_signals()
        return
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # no ANSI colour codes in the workers' lines in a file
    # a local start is held whole (nothing half-started is left behind); joining a cluster
    # leaves no process here and may wait on the network, so Ctrl-C stays live there
    held = {signal.SIGTERM, signal.SIGINT}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held) if command and not address else None
    try:
        came: list[int] | None = [] if command else None
        if address:
            ray.init(address=address, **kwargs)
        else:
            _start_local(came, num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus, include_dashboard=dashboard,
                         object_store_memory=256 * 1024**2, **kwargs)
        if came is not None:
            install_stop_signals()  # a signal held meanwhile is delivered to these, once unblocked
            faultplan.point("ray_start", detail=_ray_tree)  # the fault suite's signal in this window
            if came:  # one noted while Ray started: raised now, held by this thread's mask like the rest
                signal.raise_signal(came[0])
    except ConnectionError as e:
        raise AWSAAError(f"cannot reach the Ray cluster at {address}: {' '.join(str(e).split())[:200]}") from None
    finally:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _ray_tree() -> dict[int, int]:
    """{pid: start time} of this process's descendants: its local Ray and its reaper."""
    return reaper.descendants(os.getpid(), reaper._processes())


def _start_local(came: list[int] | None = None, **kwargs) -> None:
    """A local Ray. Without ``came`` (from Python) Ray as Ray starts it. With ``came`` (a
    command, in its main thread) one owned by the command: its processes start with SIGTERM
    blocked (init_ray holds it; a signal mask is inherited across fork and exec), as Ray already
    blocks SIGINT in them: a SIGTERM to the command's whole process group (``timeout``, a
    service manager) then reaches the driver, which stops at a clean point, instead of killing
    the GCS under it. Ray's own shutdown still ends them (SIGKILL after a second). A reaper
    kills whatever survives the driver (:mod:`awsaa.distributed.reaper`).

    A SIGINT or SIGTERM that comes while ``ray.init`` runs is appended to ``came``, not acted
    on, until the caller installs its handlers. The mask alone does not keep it out: it holds
    the signal in this thread only, and a thread the imports started does not block it, so
    Python still ran a handler in the middle of ``ray.init``: Ray's own SIGTERM handler
    (``sys.exit``) there left its core half-built, and it aborted at exit (134, its C++ stack)
    after the tool's line (1 of 14 tries by hand). Ray installs that handler first thing in
    ``ray.init``; with ``came`` it is not installed (the tools' handlers replace it right after
    anyway)."""
    import ray

    # A new local cluster keeps Ray's token authentication on; the warning that says so opened
    # every laptop run (the README says what the token is and how it works on a cluster).
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    if came is None:  # from Python: Ray as Ray starts it
        ray.init(address="local", **kwargs)
        return
    reaper.mark()  # before ray.init: every process of this Ray inherits the reaper's token
    reaper.watch()  # before ray.init too: a start cut short (a signal, an error) leaves nothing behind
    with _signals_noted(came):
        ray.init(address="local", **kwargs)  # SIGTERM held by init_ray (the mask is inherited)
    _no_graceful_kill()


@contextlib.contextmanager
def _signals_noted(came: list[int]) -> Iterator[None]:
    """SIGINT and SIGTERM appended to ``came`` instead of acted on, and Ray's SIGTERM handler
    kept out (its private setter, pinned with Ray, is swapped for one that installs nothing; the
    fault suite's ``ray_init`` point fires there, inside ``ray.init``). On success the noting
    handlers stay, so nothing slips through before the caller installs its own; on an error
    the handlers before are put back."""
    from ray._private import utils

    def note(signum: int, frame: Any) -> None:
        came.append(signum)

    def ray_sets_its_handler(handler: Any) -> None:
        faultplan.point("ray_init")

    before = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    setter = utils.set_sigterm_handler
    utils.set_sigterm_handler = ray_sets_its_handler
    try:
        yield
    except BaseException:
        for s, h in before.items():
            signal.signal(s, h)
        raise
    finally:
        utils.set_sigterm_handler = setter


def _no_graceful_kill() -> None:
    """Ray's shutdown sends each of its processes SIGTERM, waits a second, then SIGKILLs it.
    Ours block SIGTERM, so every one of those seconds is spent waiting for an exit that cannot
    come (7-8 s per command, at its end): go straight to the SIGKILL Ray sends anyway. (The
    node object is Ray's private one, pinned with Ray; without it, shutdown is slow, not wrong.)"""
    from ray._private import worker

    node: Any = getattr(worker, "_global_node", None)
    kill = getattr(node, "kill_all_processes", None)
    if kill is None:
        return

    def kill_all_processes(check_alive: bool = True, allow_graceful: bool = False, wait: bool = False) -> None:
        kill(check_alive=check_alive, allow_graceful=False, wait=wait)

    node.kill_all_processes = kill_all_processes


def has_real_gpus() -> bool:
    """Whether the cluster's GPUs are physical (nodes with GPUs advertise ``accelerator_type:*``)
    rather than logical ones given with ``--num-gpus`` for testing."""
    import ray

    return any(k.startswith("accelerator_type:") for k in ray.cluster_resources())


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0))


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 1))

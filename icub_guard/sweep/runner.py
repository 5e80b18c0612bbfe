"""Running a sweep's cells as Ray tasks: Ray inside this process by default, or an existing cluster.

With no address, `ray.init` starts Ray here (`num_cpus` = `--workers`, no dashboard, quiet): nothing to install
or start by hand. `--address` or `RAY_ADDRESS` joins a cluster whose nodes run the same icub_guard (the driver
puts its own source tree on the workers' `PYTHONPATH`, which serves nodes that share this file system).

Shared work once: the cells that share a `PrepKey` (backbone, weights, data set, sizes, seed) take one
`prepare` task's result from the object store — crops, features, fitted classifiers — as an argument, so Ray
runs that task once and every such cell waits for it. Each cell declares its resources (CPUs, a fraction of a
GPU where the cluster has one). A task lost with its node is re-run by Ray (`max_retries`); a cell whose
evaluation raises is recorded with the error and submitted again up to the sweep's `retries`; a cell that
still fails stays in the table as `failed`, with every attempt's error.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import socket
import subprocess
import threading
import time
import traceback
from dataclasses import asdict
from functools import cache
from pathlib import Path

from tqdm import tqdm

from ..evaluation.prepared import PrepKey
from .grid import Cell
from .kinds import EvaluationKind
from .results import ResultsTable
from .spec import SweepError, SweepSpec

log = logging.getLogger(__name__)
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the tree this icub_guard is imported from
SYSTEM_RETRIES = 3  # Ray's re-runs of a task whose worker or node died (not counted as the cell's attempts)


@cache
def code_version() -> str:
    """`git describe` of the source tree the code runs from, else the installed package's version."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=SOURCE_ROOT,
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"git {out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"icub_guard {version('icub_guard')}"
    except PackageNotFoundError:
        return "unknown"


def machine() -> dict:
    """Where a task ran: host, platform, CPUs, the GPU if one was visible, the Ray node."""
    import ray
    import torch

    out = {"host": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count(),
           "python": platform.python_version(), "torch": torch.__version__}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    if ray.is_initialized():
        out["ray_node"] = ray.get_runtime_context().get_node_id()
    return out


def prepare_task(key: PrepKey, cpus: float):
    """Ray task: the shared data, features and classifiers of one `PrepKey`."""
    import torch

    from ..core.features import BackboneSpec, FeatureExtractor
    from ..evaluation.prepared import prepare

    torch.set_num_threads(max(1, int(cpus)))
    torch.manual_seed(key.seed)
    extractor = FeatureExtractor(BackboneSpec(key.backbone, key.weights, key.seed, key.input_size), key.device)
    return prepare(extractor, key)


def cell_task(kind: EvaluationKind, cfg, prepared, cpus: float) -> dict:
    """Ray task: one cell's evaluation, in this worker's process; its summary, cost, machine and code."""
    import torch

    torch.set_num_threads(max(1, int(cpus)))
    t = time.perf_counter()
    result = kind.run(cfg, prepared)
    return {"summary": kind.summarise(result), "seconds": time.perf_counter() - t, "machine": machine(),
            "code_version": code_version(),
            "shared": None if prepared is None else {"key": asdict(prepared.key), "token": prepared.token,
                                                     "seconds": prepared.seconds}}


def describe(exc: BaseException) -> str:
    """A failed attempt's error: the evaluation's own exception where Ray wrapped one, and where it was raised."""
    cause = getattr(exc, "cause", None) or exc
    text = f"{type(cause).__name__}: {cause}".strip()
    tb = traceback.extract_tb(cause.__traceback__) if cause.__traceback__ else []
    if tb:
        text += f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})"
    return text[:4000]


def connect(address: str | None, workers: int | None) -> bool:
    """Join `address` (or RAY_ADDRESS), or start Ray in this process; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH"))
                                                      if p)}}
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "runtime_env": env}
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError) as exc:
            raise SweepError(f"cannot join the Ray cluster at {address}: {exc}") from exc
    else:
        ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, **quiet)
    return True


class Stopped(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a scheduler) during a sweep: handled as Ctrl-C is — the cells in flight are
    cancelled and released, the finished ones stay — with the signal's number for the exit code."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def run_sweep(spec: SweepSpec, cells: list[Cell], address: str | None = None, workers: int | None = None,
              quiet: bool = False) -> dict:
    """Run every cell not yet done; append each to the results table as it finishes. Returns counts."""
    import ray

    table = ResultsTable(spec.results)
    try:
        table.release_running()  # left by a run that was interrupted
        table.register(spec.evaluation, cells)
        state = table.status([c.hash for c in cells])
        todo = [c for c in cells if state[c.hash] != "done"]
        summary = {"cells": len(cells), "skipped_done": len(cells) - len(todo), "done": 0, "failed": 0,
                   "prepare_tasks": 0, "wall_s": 0.0}
        if not todo:
            return summary
        started = connect(address, workers)
        # after ray.init, which sets its own SIGTERM handler (sys.exit: the cells in flight would stay "running")
        received: list[int] = []

        def stop(signum, frame):
            received.append(signum)
            raise Stopped(signum)

        before = signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
        try:
            _run(spec, todo, table, summary, quiet)
        except KeyboardInterrupt as exc:  # Ray's wait may turn the handler's exception into a plain one
            if received and not isinstance(exc, Stopped):
                raise Stopped(received[0]) from exc
            raise
        finally:
            if before is not None:
                signal.signal(signal.SIGTERM, before)
            if started:
                ray.shutdown()
        return summary
    finally:
        table.close()


def _run(spec: SweepSpec, todo: list[Cell], table: ResultsTable, summary: dict, quiet: bool) -> None:
    import ray

    t0 = time.perf_counter()
    gpus = spec.resources.gpus if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    opts = {"num_cpus": spec.resources.cpus, "num_gpus": gpus, "max_retries": SYSTEM_RETRIES}
    prep_remote = ray.remote(prepare_task).options(**opts)
    cell_remote = ray.remote(cell_task).options(**opts)
    preps: dict[PrepKey, ray.ObjectRef] = {}

    def prep_of(cell: Cell, fresh: bool = False):
        key = spec.kind.prep_key(cell.config)
        if key is None:
            return None
        if fresh or key not in preps:
            preps[key] = prep_remote.remote(key, spec.resources.cpus)
            summary["prepare_tasks"] += 1
        return preps[key]

    def submit(cell: Cell, prep) -> ray.ObjectRef:
        table.mark_running(cell.hash)
        return cell_remote.remote(spec.kind, cell.config, prep, spec.resources.cpus)

    inflight = {}
    for c in todo:
        prep = prep_of(c)
        inflight[submit(c, prep)] = (c, prep, 1)
    bar = tqdm(total=len(todo), desc=f"sweep {spec.path.name}", unit="cell", disable=quiet)
    try:
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=2.0)
            for ref in ready:
                cell, prep, attempt = inflight.pop(ref)
                try:
                    out = ray.get(ref)
                except Exception as exc:  # the evaluation's error, or a task lost more often than Ray retries
                    error = describe(exc)
                    final = attempt > spec.retries
                    table.record_failure(cell.hash, error, final)
                    log.warning("cell %d (%s) attempt %d failed: %s", cell.index, cell.label, attempt, error)
                    if final:
                        summary["failed"] += 1
                        bar.update(1)
                    else:  # a failed shared preparation is computed again, once per key, for its retry
                        failed_prep = prep is not None and _failed(prep)
                        if failed_prep and preps.get(spec.kind.prep_key(cell.config)) is prep:
                            prep = prep_of(cell, fresh=True)
                        elif failed_prep:
                            prep = prep_of(cell)
                        inflight[submit(cell, prep)] = (cell, prep, attempt + 1)
                    continue
                table.record_done(cell.hash, out)
                summary["done"] += 1
                bar.update(1)
                bar.set_postfix(done=summary["done"], failed=summary["failed"])
    except KeyboardInterrupt:
        for ref in inflight:
            ray.cancel(ref, force=True)
        table.release_running()
        raise
    finally:
        bar.close()
        summary["wall_s"] = time.perf_counter() - t0


def _failed(ref) -> bool:
    import ray

    ready, _ = ray.wait([ref], timeout=0)
    if not ready:
        return False
    try:
        ray.get(ref)
    except Exception:
        return True
    return False

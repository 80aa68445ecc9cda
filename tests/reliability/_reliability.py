"""Test infrastructure for reliability tests: a real Spark standalone cluster on
127.0.0.1, process-tree helpers for fault injection, generated inputs and tiny models.

Kept free of pytest so the audio/text reliability tests can reuse it::

    from _reliability import StandaloneCluster, python_workers, kill_during_job
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------
# Processes (Linux /proc; psutil is not a dependency)
# --------------------------------------------------------------------------------------


def _proc_ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[1])


def _proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()[0].decode()


def cmdline(pid: int) -> str:
    """The command line of ``pid`` with spaces between arguments ("" when gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    state = _proc_state(pid)
    return state is not None and state != "Z"


def descendants(root: int) -> list[int]:
    """All live descendants of ``root`` (children first-level order, then deeper)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _proc_ppid(int(entry))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        if alive(pid):
            out.append(pid)
        todo.extend(children.get(pid, []))
    return out


#: Python daemon modules: pyspark's, and deepspark's wrapper (local sessions).
_DAEMONS = ("pyspark.daemon", "deepspark.runtime._daemon")


def python_workers(roots: Iterable[int]) -> list[int]:
    """PySpark Python workers below ``roots``: the processes forked by ``pyspark.daemon``
    (or started as ``pyspark.worker`` when the daemon is off); never the daemon itself."""
    found: list[int] = []
    for root in roots:
        for pid in descendants(root):
            line = cmdline(pid)
            if any(d in line for d in _DAEMONS):
                # The daemon runs as "python -m pyspark.daemon pyspark.worker" (or
                # deepspark's, in local sessions) and forks the workers, which keep its
                # command line: a worker's parent is a daemon.
                parent = cmdline(_proc_ppid(pid) or 0)
                if any(d in parent for d in _DAEMONS):
                    found.append(pid)
            elif "pyspark.worker" in line:  # spark.python.use.daemon=false
                found.append(pid)
    return found


def kill_tree(root: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``root``, its process group and every descendant."""
    pids = [root, *descendants(root)]
    try:
        os.killpg(root, sig)
    except OSError:
        pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------
# A standalone cluster from pyspark's own launch scripts
# --------------------------------------------------------------------------------------


def spark_home() -> Path:
    """pyspark's package folder: it holds ``bin/spark-class`` and ``jars/``."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@dataclass
class StandaloneCluster:
    """A Spark standalone master and ``workers`` workers on 127.0.0.1, one core each.

    Every daemon runs in its own session (process group) so it can be killed with all
    it started (executor JVMs and their Python workers), whatever happens to the test.

    Examples
    --------
    >>> with StandaloneCluster(Path("/tmp/c")) as cluster:      # doctest: +SKIP
    ...     spark = SparkSession.builder.master(cluster.master_url).getOrCreate()
    """

    workdir: Path
    workers: int = 2
    cores: int = 1
    memory: str = "1g"
    daemon_memory: str = "256m"
    startup_timeout: float = 90.0
    master_port: int = 0
    master_ui_port: int = 0
    _master: subprocess.Popen[bytes] | None = None
    _workers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    _finalizer: Any = None

    # ---------------------------------------------------------------- lifecycle
    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        home = spark_home()
        env.update(
            SPARK_HOME=str(home),
            SPARK_DAEMON_MEMORY=self.daemon_memory,
            SPARK_LOG_DIR=str(self.workdir / "logs"),
            SPARK_PID_DIR=str(self.workdir / "pids"),
            SPARK_LOCAL_IP="127.0.0.1",
        )
        # Quiet daemons: deepspark's log4j2 config (errors only).
        conf = Path(str(resources.files("deepspark") / "resources" / "log4j2.properties"))
        # JIT tier 1 and the serial GC start a JVM much faster on a busy small machine;
        # daemons of a test cluster do little work.
        fast_jvm = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:CICompilerCount=1"
        env["SPARK_LAUNCHER_OPTS"] = fast_jvm
        env["SPARK_DAEMON_JAVA_OPTS"] = f"{fast_jvm} -Dlog4j2.configurationFile=file:{conf}"
        return env

    def _spawn(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.workdir / "logs" / f"{name}.out", "ab")  # noqa: SIM115 - child owns it
        try:
            return subprocess.Popen(
                [str(spark_home() / "bin" / "spark-class"), *args],
                env={**self._env(), **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group: killpg reaches its children
            )
        finally:
            log.close()

    def start(self) -> StandaloneCluster:
        """Start the master and the workers; returns when every worker is registered."""
        for sub in ("logs", "pids", "work"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.master_port = self.master_port or free_port()
        self.master_ui_port = self.master_ui_port or free_port()
        # Whatever happens (failed start, crashed test, interpreter exit), stop it all.
        self._finalizer = weakref.finalize(self, _stop_all, self._pids_ref())
        self._master = self._spawn(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1",
            "--port", str(self.master_port),
            "--webui-port", str(self.master_ui_port),
        )  # fmt: skip
        self._pid_list.append(self._master.pid)
        # Workers start together with the master (JVM start-up is the slow part); they
        # retry registering until the master answers.
        for i in range(self.workers):
            self.start_worker(i)
        self.wait_workers(self.workers)
        return self

    def _pids_ref(self) -> list[int]:
        # A list shared with the finalizer; spawned daemons are appended to it.
        self._pid_list: list[int] = []
        return self._pid_list

    def start_worker(self, index: int) -> None:
        """(Re)start worker ``index`` (one core, ``memory``, one ``gpu`` address).

        Each worker declares one resource ``gpu`` with address ``str(index)`` through a
        discovery script, as an administrator declares real GPUs. Applications that ask
        for no GPU (``spark.executor.resource.gpu.amount``) are unaffected; those that do
        get a task-level address in ``TaskContext.resources()`` (no GPU exists behind it).
        """
        work = self.workdir / "work" / f"worker{index}"
        work.mkdir(parents=True, exist_ok=True)
        script = self.workdir / f"gpus{index}.sh"
        found = json.dumps({"name": "gpu", "addresses": [str(index)]})
        script.write_text(f"#!/bin/sh\necho '{found}'\n")
        script.chmod(0o755)
        proc = self._spawn(
            f"worker{index}",
            "org.apache.spark.deploy.worker.Worker",
            self.master_url,
            "--cores", str(self.cores),
            "--memory", self.memory,
            "--host", "127.0.0.1",
            "--webui-port", str(free_port()),
            "--work-dir", str(work),
            env={
                "SPARK_WORKER_OPTS": "-Dspark.worker.resource.gpu.amount=1 "
                f"-Dspark.worker.resource.gpu.discoveryScript={script}"
            },
        )  # fmt: skip
        self._workers[index] = proc
        self._pid_list.append(proc.pid)

    def worker_pid(self, index: int) -> int:
        return self._workers[index].pid

    def kill_worker(self, index: int, whole_tree: bool = False) -> None:
        """SIGKILL worker ``index``'s JVM (with ``whole_tree``, its executors too)."""
        proc = self._workers[index]
        if whole_tree:
            kill_tree(proc.pid)
        else:
            proc.kill()
        proc.wait(timeout=30)

    def state(self) -> dict[str, Any] | None:
        """The master's JSON status (``/json/`` of its web UI), None while it is down."""
        url = f"http://127.0.0.1:{self.master_ui_port}/json/"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError):
            return None

    def alive_workers(self) -> int:
        state = self.state() or {}
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def wait_workers(self, count: int) -> None:
        """Wait until ``count`` workers are registered and ALIVE."""
        self._wait(
            lambda s: (
                s is not None
                and sum(1 for w in s.get("workers", []) if w.get("state") == "ALIVE") >= count
            ),
            f"{count} alive workers",
        )

    def _wait(self, ready: Callable[[dict[str, Any] | None], bool], what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._master is not None and self._master.poll() is not None:
                break
            if ready(self.state()):
                return
            time.sleep(0.3)
        logs = "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted((self.workdir / "logs").glob("*.out"))
        )
        self.stop()
        raise RuntimeError(f"standalone cluster: timed out waiting for {what}\n{logs}")

    def stop(self) -> None:
        """Kill every daemon with its process group and descendants; idempotent."""
        if self._finalizer is not None:
            self._finalizer()
        for proc in [*self._workers.values(), *([self._master] if self._master else [])]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def __enter__(self) -> StandaloneCluster:  # noqa: PYI034 - start() returns self
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_all(pids: list[int]) -> None:
    # Workers first (they own executors), then the master.
    for pid in list(reversed(pids)):
        kill_tree(pid, signal.SIGKILL)


def stop_active_session() -> None:
    """Stop the active SparkSession, if any (one SparkContext per process)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


def wait_executors(spark: object, count: int, timeout: float = 90.0) -> None:
    """Wait until the application has ``count`` executors (besides the driver)."""
    sc = spark.sparkContext  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sc._jsc.sc().getExecutorMemoryStatus().size() - 1 >= count:
            return
        time.sleep(0.3)
    raise RuntimeError(f"the application did not get {count} executors within {timeout}s")


# --------------------------------------------------------------------------------------
# Fault injection while a job runs
# --------------------------------------------------------------------------------------


@dataclass
class JobWatch:
    """What happened to the stages of a job while it ran (from Spark's status tracker)."""

    failed_tasks: int = 0
    completed_at_fault: int = 0
    total_tasks: int = 0
    faults: list[str] = field(default_factory=list)

    @property
    def fault_done(self) -> bool:
        return bool(self.faults)

    @property
    def fault_info(self) -> str:
        return "; ".join(self.faults)


def run_with_fault(
    spark: Any,
    job: Callable[[], Any],
    fault: Callable[[], str | None],
    *,
    after_completed: int = 1,
    timeout: float = 300.0,
    max_faults: int = 3,
    settle: float = 3.0,
) -> tuple[Any, JobWatch]:
    """Run ``job()`` in a thread and inject ``fault()`` in the middle of it.

    ``fault`` is called once a stage of the job has ``after_completed`` finished tasks,
    tasks running and tasks still waiting; it returns a description of what it did, or
    None to be called again later (e.g. no busy Python worker yet). A fault that has
    failed no task within ``settle`` seconds (it hit a process just as its task ended,
    e.g. a reused Python worker collecting garbage between tasks) is injected again,
    ``max_faults`` times at most; a short ``settle`` lets a retry land before a fast
    job ends (a killed Python worker fails its task within milliseconds). Returns ``(job result, watch)``;
    ``watch.failed_tasks`` counts failed task attempts.
    """
    sc = spark.sparkContext
    group = f"fault-{time.monotonic_ns()}"
    result: dict[str, Any] = {}

    def target() -> None:
        sc.setJobGroup(group, "job under fault injection")
        try:
            result["value"] = job()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    watch = JobWatch()
    tracker = sc.statusTracker()
    seen_stages: set[int] = set()
    deadline = time.monotonic() + timeout
    last_fault = [0.0]

    def poll() -> None:
        for job_id in tracker.getJobIdsForGroup(group):
            info = tracker.getJobInfo(job_id)
            if info is not None:
                seen_stages.update(info.stageIds)
        failed = 0
        for stage_id in seen_stages:
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                failed += stage.numFailedTasks
        watch.failed_tasks = max(watch.failed_tasks, failed)
        if watch.failed_tasks or len(watch.faults) >= max_faults:
            return
        if watch.faults and time.monotonic() - last_fault[0] < settle:
            return
        for stage_id in seen_stages:
            stage = tracker.getStageInfo(stage_id)
            if stage is None:
                continue
            watch.total_tasks = max(watch.total_tasks, stage.numTasks)
            waiting = stage.numTasks - stage.numCompletedTasks - stage.numActiveTasks
            # The first fault lands mid-stage (tasks done, running and waiting); a retry
            # only needs a running task: by the time a missed kill is known, the last
            # tasks may all have started (a CI run's only kill hit a worker between
            # tasks with 2 done, 2 running, 2 waiting, and no retry followed).
            if (
                stage.numCompletedTasks >= after_completed
                and stage.numActiveTasks > 0
                and (waiting > 0 or bool(watch.faults))
            ):
                done = fault()
                if done is not None:
                    watch.faults.append(done)
                    watch.completed_at_fault = stage.numCompletedTasks
                    last_fault[0] = time.monotonic()
                return

    while thread.is_alive() and time.monotonic() < deadline:
        poll()
        time.sleep(0.05)
    thread.join(timeout=max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        sc.cancelJobGroup(group)
        raise TimeoutError(f"job did not finish within {timeout}s ({watch})")
    poll()  # failed attempts of finished stages stay in the tracker
    if "error" in result:
        raise result["error"]
    return result.get("value"), watch


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return -1
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def busy_python_workers(roots: Iterable[int], window: float = 0.2) -> list[int]:
    """Python workers below ``roots`` that used CPU in each of two ``window``-second
    samples (running a task, as opposed to idle reused workers waiting for the next
    one), busiest first.

    A task can hold two workers (a reader's decoding UDF and the model): the model's
    uses the most CPU, and the decoder's may go idle (back to the pool, where killing it
    fails no task) before the task ends. A worker that has just sent its task's last
    rows still spends a moment of CPU (freeing its batches): busy in one sample only,
    it is not taken (two such kills in a row failed no task in a full run).
    """
    pids = python_workers(roots)
    used = {pid: 0 for pid in pids}
    for _ in range(2):
        before = {pid: _cpu_ticks(pid) for pid in used}
        time.sleep(window)
        used = {
            pid: total + _cpu_ticks(pid) - before[pid]
            for pid, total in used.items()
            if alive(pid) and before[pid] >= 0 and _cpu_ticks(pid) > before[pid]
        }
    return sorted(used, key=lambda p: -used[p])


# --------------------------------------------------------------------------------------
# Generated inputs and models
# --------------------------------------------------------------------------------------


def write_jpegs(
    folder: Path, count: int, size: tuple[int, int] = (48, 40), seed: int = 0
) -> list[Path]:
    """``count`` small, distinct JPEG photos-like images (smooth gradients plus noise)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paths = []
    for i in range(count):
        base = rng.uniform(0, 255, size=3).astype(np.float32)
        slope = rng.uniform(-3, 3, size=(2, 3)).astype(np.float32)
        img = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
        img += rng.normal(0, 8, size=img.shape).astype(np.float32)
        path = folder / f"img_{i:04d}.jpg"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def encode(img: Any, fmt: str, **kwargs: Any) -> bytes:
    """A Pillow image encoded in ``fmt`` as bytes."""
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def tiny_onnx_classifier(
    path: Path,
    *,
    size: int = 32,
    channels: int = 3,
    classes: int = 10,
    conv_channels: int = 0,
    conv_layers: int = 1,
    seed: int = 0,
) -> Path:
    """An ONNX image classifier built with ``onnx.helper``: input ``input`` float32
    [N, channels, size, size] -> (convs) -> global average pool -> linear -> ``logits``.

    ``conv_channels`` > 0 adds ``conv_layers`` 3x3 convolutions with that many filters,
    to make inference cost real time (for fault injection mid-job).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current, width = "input", channels
    for layer in range(conv_layers if conv_channels else 0):
        w = rng.normal(0, 0.2, size=(conv_channels, width, 3, 3)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"conv{layer}_w"))
        nodes.append(
            helper.make_node("Conv", [current, f"conv{layer}_w"], [f"conv{layer}"], pads=[1] * 4)
        )
        nodes.append(helper.make_node("Relu", [f"conv{layer}"], [f"relu{layer}"]))
        current, width = f"relu{layer}", conv_channels
    nodes.append(helper.make_node("GlobalAveragePool", [current], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], axis=1))
    fc = rng.normal(0, 3.0, size=(width, classes)).astype(np.float32)
    bias = rng.normal(0, 0.5, size=(classes,)).astype(np.float32)
    inits += [numpy_helper.from_array(fc, "fc_w"), numpy_helper.from_array(bias, "fc_b")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "tiny_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def predictor_kwargs(model: Path, size: int = 32) -> dict[str, Any]:
    """DeepImagePredictor Params for :func:`tiny_onnx_classifier` models."""
    return {
        "model": str(model),
        "labels": [f"class{i}" for i in range(10)],
        "inputSize": [size, size],
        "topK": 3,
        "batchSize": 16,
    }


def rows_by_origin(rows: Iterable[Any]) -> dict[str, tuple[Any, ...]]:
    """{origin: (classes, probabilities, error)}; fails on duplicate origins."""
    out: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        origin = row["origin"]
        assert origin not in out, f"duplicate output row for {origin}"
        preds = row["predictions"]
        classes = tuple(p["class"] for p in preds) if preds is not None else None
        probs = tuple(float(p["probability"]) for p in preds) if preds is not None else None
        out[origin] = (classes, probs, row["error"])
    return out


def assert_same_predictions(
    got: dict[str, tuple[Any, ...]], want: dict[str, tuple[Any, ...]], tol: float = 1e-5
) -> None:
    """Same origins, same top classes and errors, probabilities within ``tol``."""
    assert set(got) == set(want), (
        f"missing: {sorted(set(want) - set(got))[:5]}, extra: {sorted(set(got) - set(want))[:5]}"
    )
    for origin, (classes, probs, error) in want.items():
        g_classes, g_probs, g_error = got[origin]
        assert (g_classes, g_error) == (classes, error), origin
        if probs is not None:
            np.testing.assert_allclose(g_probs, probs, atol=tol, err_msg=origin)

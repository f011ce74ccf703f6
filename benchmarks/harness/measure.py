"""Run a command and measure it: wall time, exit code, and the peak memory of its process tree.

Memory is read from /proc while the command runs (Linux): a run of the graph under the CLI is a
tree of processes (the CLI, a forkserver, one forked process per step), and what matters is the
tree's footprint, not the parent's.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness.sandbox import PROJECT_ROOT

SAMPLE_INTERVAL_S = 0.2


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant, from the parent pids in /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, "stat")) as handle:
                stat = handle.read()
        except OSError:  # the process ended meanwhile
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # after "(comm)": state, ppid, ...
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def memory_bytes(pid: int) -> tuple[int, int, int]:
    """(VmRSS, VmHWM, Pss) of ``pid`` from /proc; zeros for a zombie or a gone process.

    Pss (``/proc/<pid>/smaps_rollup``) counts each page shared by n processes as 1/n of a page
    in each: summed over a tree it is the tree's real footprint, where a sum of RSS counts the
    project a forkserver preloaded once per forked step.

    VmHWM is the process's own peak RSS since its exec. (``wait4``'s ``ru_maxrss`` is not used:
    Linux carries the high-water mark across fork and exec, so a child of a large parent reports
    at least the parent's RSS.)
    """
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                    break  # VmRSS follows VmHWM
    except OSError:
        pass
    pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return rss, hwm, pss


class TreeRssSampler(threading.Thread):
    """Samples the summed RSS and PSS of a process tree until stopped; keeps the peaks.

    A sum of RSS counts pages shared between processes (libraries, forked memory) once per
    process, so it is an upper bound of the tree's real footprint. Each process's own peak
    (VmHWM) is kept too: the largest is exact for a one-process run, whatever the sampling missed.
    """

    def __init__(self, root: int, interval: float = SAMPLE_INTERVAL_S) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_bytes = 0
        self.peak_pss_bytes = 0
        self.peak_processes = 0
        self.max_processes = 0
        self.process_peaks: dict[int, int] = {}  # pid -> largest VmHWM seen
        self._stop_event = threading.Event()

    def sample(self) -> None:
        pids = process_tree(self.root)
        total = total_pss = 0
        for pid in pids:
            rss, hwm, pss = memory_bytes(pid)
            total += rss
            total_pss += pss
            self.process_peaks[pid] = max(self.process_peaks.get(pid, 0), hwm)
        self.peak_pss_bytes = max(self.peak_pss_bytes, total_pss)
        self.max_processes = max(self.max_processes, len(pids))
        if total > self.peak_bytes:
            self.peak_bytes, self.peak_processes = total, len(pids)

    def run(self) -> None:
        while True:
            self.sample()
            if self._stop_event.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


@dataclass
class Measured:
    """One finished command: wall time, exit code, memory, when it was launched."""

    seconds: float
    returncode: int
    tree_peak_bytes: int = 0  # summed RSS of the process tree, sampled
    tree_peak_pss_bytes: int = 0  # summed Pss of the process tree, sampled
    tree_peak_processes: int = 0  # processes in the tree at that sample
    max_processes: int = 0  # most processes seen in the tree at once
    single_peak_bytes: int = 0  # the largest VmHWM of one process of the tree
    launched: float = 0.0  # epoch seconds, to place the run's own timestamps
    log: str = ""  # the output's tail, on failure

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_measured(
    cmd: Sequence[str],
    env: dict[str, str],
    log: Path,
    timeout: float,
    memory: bool = True,
) -> Measured:
    """Run ``cmd`` from the project root in its own session, output to ``log``, and measure it.

    Its own session, so that a timeout kills the whole tree. ``memory=False`` skips the /proc
    sampler, for sub-second commands where the sampler's own work would show in the time.
    """
    with log.open("w") as out:
        launched = time.time()
        start = time.perf_counter()
        process = subprocess.Popen(
            list(cmd),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        sampler = TreeRssSampler(process.pid) if memory else None
        if sampler is not None:
            sampler.start()
        timer = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGKILL))
        timer.start()
        try:
            returncode = process.wait()
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        finally:
            timer.cancel()
            if sampler is not None:
                sampler.stop()
        seconds = time.perf_counter() - start
    measured = Measured(seconds=seconds, returncode=returncode, launched=launched)
    if returncode != 0:
        measured.log = tail(log.read_text(errors="replace"))
    if sampler is not None:
        measured.tree_peak_bytes = sampler.peak_bytes
        measured.tree_peak_pss_bytes = sampler.peak_pss_bytes
        measured.tree_peak_processes = sampler.peak_processes
        measured.max_processes = sampler.max_processes
        measured.single_peak_bytes = max(sampler.process_peaks.values(), default=0)
    return measured


def tail(text: str | None, lines: int = 30) -> str:
    """The last ``lines`` lines of a command's output."""
    return "\n".join((text or "").rstrip().splitlines()[-lines:]) or "(empty)"


def load_average() -> str:
    """The machine's load averages: other work on it shows in every figure."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def versions() -> dict[str, str]:
    """Python's and the measured libraries' versions, for the report."""
    from importlib.metadata import version

    names = ("dagster", "kfp", "mlflow", "scikit-learn", "pandas")
    return {"python": platform.python_version(), **{n: version(n) for n in names}}

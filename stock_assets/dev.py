"""``make dev``: ``dagster dev``, which Ctrl+C stops, with everything it started, in bounded time.

A terminal's Ctrl+C sends SIGINT to the whole foreground process group: this process,
``dagster dev`` and the webserver, daemon, code servers and run workers it started. ``dagster
dev`` then waits up to 60 s for each of its servers, a code server waits for its run workers,
and a run worker waits for its steps, so a step stuck in a long call can hold the terminal for
minutes; a second Ctrl+C can abort ``dagster dev``'s own shutdown and leave its servers running.
Here, once Ctrl+C (or SIGTERM) arrived, whatever of the group is still alive after
:data:`GRACE_SECONDS`, or at once on a second Ctrl+C, is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

#: How long Dagster may take to stop by itself after Ctrl+C.
GRACE_SECONDS = 10.0


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``, but this one and its parent (``make``)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), os.getppid()):
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def kill_group(pgid: int) -> None:
    """SIGKILL every live process of the group but this one and its parent."""
    for pid in group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    """Run ``dagster dev`` with ``argv``; on Ctrl+C, stop it and its group within the grace."""
    dagster = Path(sys.executable).with_name("dagster")
    process = subprocess.Popen([str(dagster), "dev", *(argv if argv is not None else sys.argv[1:])])
    pgid = os.getpgid(0)
    stopping: list[float] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stopping:  # a second Ctrl+C: no more waiting
            kill_group(pgid)
            return
        stopping.append(time.monotonic())
        if signum == signal.SIGTERM:  # sent to this process alone: Ctrl+C reaches the group
            process.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while True:
        try:
            code = process.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if stopping and time.monotonic() - stopping[0] > GRACE_SECONDS:
                kill_group(pgid)
    if stopping:
        kill_group(pgid)  # servers dagster dev left behind
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())

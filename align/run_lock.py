"""One `align run` per run directory at a time.

An OS advisory lock (`fcntl.flock`) on `<run_dir>/.lock`: the kernel drops it when the
holding process exits, however it exits (SIGKILL included), so a stale lock cannot outlive
its run. The file keeps the holder's PID, host and start time for the message a second run
prints; a leftover file without a live lock means nothing.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from align.errors import AlignError

LOCK_FILE = ".lock"


class RunDirBusy(AlignError):
    """Another process holds the run directory."""

    exit_code = 5


class RunDirLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "RunDirLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: the holder's record stays readable
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirBusy(f"run directory {self.path.parent} is in use by another align run ({holder}); "
                             "wait for it to finish, stop it, or give this run another run_dir") from None
        os.ftruncate(fd, 0)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.write(fd, (json.dumps(record) + "\n").encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        record = json.loads(os.read(fd, 4096).decode() or "{}")
        return f"PID {record['pid']} on {record['host']}, started {record['started_at']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "PID unknown: it is still starting"

"""`python -m devicestream.logpump LOG MAX_BYTES BACKUPS -- ARGV...`: run ARGV with its stdout and
stderr going to LOG, rotated by size (LOG.1 .. LOG.BACKUPS, like logging's RotatingFileHandler).

The launcher starts every component through this wrapper. The component leads a session and
process group of its own (with whatever it forks: Spark's JVM and Python workers), so `killpg` on
its pid reaches all of it, exactly as without the wrapper; its output keeps flowing to a bounded log
even when the launcher is gone. The wrapper ignores SIGTERM/SIGINT, drains the output until every
writer is gone and exits with the component's status (the exit code, or the same signal). If the
wrapper itself dies (SIGKILL), the component gets SIGKILL too (Linux): it never outlives its wrapper.

Deliberately small, standard library only: it runs once per component and must start fast.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

CHUNK = 64 * 1024


class RotatingLog:
    """Appends to `path`; before a write would take it past `max_bytes`, rotates at a line end."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path, self.max_bytes, self.backups = path, max(1, max_bytes), max(0, backups)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "ab")  # noqa: SIM115 (closed in close(), reopened on rotation)
        self.size = self.f.tell()

    def rotate(self) -> None:
        self.f.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for i in range(self.backups - 1, 0, -1):
                src = self.path.with_name(f"{self.path.name}.{i}")
                if src.exists():
                    src.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self.f = open(self.path, "ab")  # noqa: SIM115
        self.size = 0

    def write(self, data: bytes) -> None:
        while data:
            room = self.max_bytes - self.size
            if len(data) <= room:
                head, data = data, b""
            else:
                cut = data.rfind(b"\n", 0, room) + 1  # keep lines whole when one fits
                if cut == 0 and self.size > 0:
                    self.rotate()
                    continue
                cut = cut or room
                head, data = data[:cut], data[cut:]
            self.f.write(head)
            self.f.flush()
            self.size += len(head)
            if data:
                self.rotate()

    def close(self) -> None:
        self.f.close()


#: prctl(2) option: the signal the calling process gets when its parent exits (Linux)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[int], None]:
    """A pre-exec step that makes the child get SIGKILL when its parent (this wrapper) dies: on Linux
    prctl(PR_SET_PDEATHSIG); elsewhere nothing. libc is loaded here, in the parent, not after fork."""
    if not sys.platform.startswith("linux"):
        return lambda parent: None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def arm(parent: int) -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # prctl(2): the parent may have died between fork and prctl, and then no signal comes;
        # our parent is no longer the wrapper in that case, so go as the signal would have made us.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


def _own_group(die_with_parent: Callable[[int], None], parent: int) -> Callable[[], None]:
    """What the child runs before exec: a session (and process group) of its own; SIGKILL when the
    wrapper dies, so a component never outlives its wrapper (whoever stops the wrapper stops it, even
    one that does not know the component's pid yet); SIGTERM and SIGINT back to their defaults
    (ignored signals survive exec)."""

    def pre_exec() -> None:
        os.setsid()
        die_with_parent(parent)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return pre_exec


def run(log: Path, max_bytes: int, backups: int, argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = RotatingLog(log, max_bytes, backups)
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_own_group(_die_with_parent(), os.getpid()),  # single-threaded here: preexec_fn is safe
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    try:
        while chunk := os.read(fd, CHUNK):
            out.write(chunk)
    finally:
        out.close()
    return proc.wait()


def main(args: list[str]) -> None:
    if len(args) < 5 or args[3] != "--":
        sys.exit("usage: python -m devicestream.logpump LOG MAX_BYTES BACKUPS -- ARGV...")
    code = run(Path(args[0]), int(args[1]), int(args[2]), args[4:])
    if code < 0:  # the component died of a signal: so does the wrapper, for the launcher to see
        if -code not in (signal.SIGKILL, signal.SIGSTOP):  # those cannot be caught, nor reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])

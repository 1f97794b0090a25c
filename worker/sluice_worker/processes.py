"""Starting a run's flow process and making sure nothing of it outlives the run.

A flow process runs in its own session and process group, with a pipe from its worker that
carries lease renewals (see `fence`). Everything it starts inherits the attempt's lease in its
environment (`SLUICE_LEASE`), which marks the attempt's processes even after they leave the
group (`setsid`, a double fork): when the run ends, however it ends, the worker kills the group
and every process so marked. What can still escape is said in the README ("What a run leaves
behind").
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import termios
from pathlib import Path

#: The fd number (in the flow process) of the pipe that carries its lease renewals.
ENV_LEASE_FD = "SLUICE_LEASE_FD"
#: The worker's pid: a flow process whose parent is already another process exits at once.
ENV_WORKER_PID = "SLUICE_WORKER_PID"
#: Rounds of "find marked processes, kill them": a process forking while it is being killed
#: may leave a child the previous round did not see.
KILL_ROUNDS = 3
_PROC = Path("/proc")


#: One renewal on the lease pipe: a deadline as a native double. Writes this small are atomic
#: (POSIX: up to PIPE_BUF), and every reader reads whole multiples of it, so records never split.
RECORD = struct.Struct("d")
#: Unread bytes above which the flow process is not reading (stopped, or its fence thread
#: starved): the worker drops those stale renewals before writing a fresh one, so the pipe never
#: fills and the newest deadline is always there when the process reads again.
STALE_BYTES = 64 * RECORD.size


class LeasePipe:
    """The worker's ends of a flow process's lease pipe: it writes deadlines, and keeps a read
    end of its own to drop renewals the process did not read."""

    def __init__(self, write_end: int, read_end: int) -> None:
        self.write_end, self.read_end = write_end, read_end
        os.set_blocking(write_end, False)  # a stopped process must never block its worker
        os.set_blocking(read_end, False)

    def send(self, deadline: float) -> bool:
        """Tell the flow process its lease now runs until `deadline` (`lease_clock`). False
        when the process is gone."""
        try:
            if _unread(self.read_end) > STALE_BYTES:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.read_end, (STALE_BYTES // RECORD.size) * RECORD.size * 16)
            os.write(self.write_end, RECORD.pack(deadline))
            return True
        except OSError:
            return False

    def close(self) -> None:
        close_quietly(self.write_end)
        close_quietly(self.read_end)


def _unread(fd: int) -> int:
    buffer = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buffer)
    return buffer[0]


def spawn(command: list[str], *, env: dict[str, str], cwd: str | None,
          stdin: int | None = subprocess.DEVNULL) -> tuple[subprocess.Popen[bytes], LeasePipe]:
    """Start a flow process in its own session with a lease pipe; return it and the worker's
    ends of the pipe (renewals are written there, and closing them tells the process its
    worker is gone)."""
    read_end, write_end = os.pipe()
    os.set_inheritable(read_end, True)
    try:
        process = subprocess.Popen(
            command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin,
            env={**env, ENV_LEASE_FD: str(read_end), ENV_WORKER_PID: str(os.getpid())},
            pass_fds=(read_end,), start_new_session=True)
    except BaseException:
        os.close(write_end)
        os.close(read_end)
        raise
    os.set_inheritable(read_end, False)
    return process, LeasePipe(write_end, read_end)


def close_quietly(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def marked_processes(lease: str) -> list[int]:
    """Pids of this user's processes whose environment holds `SLUICE_LEASE=<lease>` (Linux;
    elsewhere none are found and the process group is all that is stopped)."""
    entry = f"SLUICE_LEASE={lease}".encode()
    found = []
    own = os.getpid()
    try:
        entries = list(_PROC.iterdir())
    except OSError:
        return []
    for path in entries:
        if not path.name.isdigit() or int(path.name) == own:
            continue
        try:
            environ = (path / "environ").read_bytes()
            if entry not in environ.split(b"\0"):
                continue
            if (path / "stat").read_text().rsplit(")", 1)[-1].split()[0] in "ZX":
                continue  # already dead, waiting to be reaped
        except (OSError, IndexError):  # gone, or another user's
            continue
        found.append(int(path.name))
    return found


def kill_run_processes(group: int | None, lease: str | None) -> int:
    """SIGKILL the run's process group and every process marked with its lease; returns how many
    marked processes outside the group were found."""
    if group is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    if not lease:
        return 0
    escaped: set[int] = set()
    for _ in range(KILL_ROUNDS):
        pids = [pid for pid in marked_processes(lease) if pid not in escaped]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                escaped.add(pid)
    return len(escaped)

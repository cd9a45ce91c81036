"""Starting, watching and stopping the processes one benchmark run needs.

Every process is started in a session of its own, so stopping it also stops
whatever it forked (Celery's pool, uvicorn's reloader if anyone turned it on).
`Processes.stop_all` runs on every way out of a run: normal end, an exception,
Ctrl-C and SIGTERM.
"""

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

logger = logging.getLogger(__name__)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Started:
    name: str
    popen: "subprocess.Popen[bytes]"
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid


class Processes:
    """The processes of one run, stopped together, newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._started: list[Started] = []

    def start(
        self, name: str, argv: Sequence[str], env: dict[str, str], cwd: Path
    ) -> Started:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("wb")
        popen = subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started = Started(name, popen, log)
        self._started.append(started)
        return started

    def stop(self, started: Started, timeout: float = 10) -> None:
        """SIGTERM the process's session, then SIGKILL what is left."""
        if started.popen.poll() is None:
            _signal_group(started.pid, signal.SIGTERM)
            try:
                started.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM; killing it", started.name)
        # Forked children (Celery's pool) can outlive their parent's exit.
        _signal_group(started.pid, signal.SIGKILL)
        started.popen.wait()
        started.log.close()
        if started in self._started:
            self._started.remove(started)

    def stop_all(self) -> None:
        for started in reversed(list(self._started)):
            self.stop(started)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Only the group of a process this run started: its session id is its pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def raise_on_signals() -> None:
    """Turn SIGTERM and SIGINT into KeyboardInterrupt, so `finally` blocks run.

    SIGINT too: asyncio's runner would otherwise only cancel the load
    generator's main task on Ctrl-C, which under uvloop let a run go on.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def free_port() -> int:
    """A loopback port nobody listens on now (others share this machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, started: Started, timeout: float = 60) -> None:
    """Block until `url` answers 200, failing early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if started.popen.poll() is not None:
            raise RuntimeError(
                f"{started.name} exited with {started.popen.returncode}; "
                f"see {started.log.name}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{started.name} did not answer {url} in {timeout:.0f} s")


def wait_for_log(started: Started, text: str, timeout: float = 60) -> None:
    """Block until the process's log contains `text`."""
    path = Path(started.log.name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if started.popen.poll() is not None:
            raise RuntimeError(f"{started.name} exited; see {path}")
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.3)
    raise TimeoutError(f"{started.name} did not log {text!r} in {timeout:.0f} s")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process so far (not its children)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces; the fields after it are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak since start) of one process, in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values

"""Ctrl-C on `careplane demo`: a clean shutdown with no process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path) -> None:
    """SIGINT to `careplane demo` mid-run: exit 130, and every process it started is gone."""
    proc = subprocess.Popen([sys.executable, "-m", "careplane", "demo", "--duration", "120", "--lead", "5",
                             "--history-days", "1", "--report", str(tmp_path / "r")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        me = psutil.Process(proc.pid)
        deadline = time.monotonic() + 90
        names: set[str] = set()
        descendants: list[psutil.Process] = []
        while time.monotonic() < deadline:
            descendants = me.children(recursive=True)
            names = {" ".join(p.cmdline()[:4]) for p in descendants if p.is_running()}
            if any("locust" in n for n in names) and any("prometheus" in n for n in names):
                break
            time.sleep(0.5)
        assert any("careplane.sandbox.workloads" in n for n in names), names
        time.sleep(3)  # let the drill run
        descendants = me.children(recursive=True)
        assert len(descendants) >= 4
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the foreground group gets SIGINT
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 130, out.decode()[-2000:]
        _gone, alive = psutil.wait_procs(descendants, timeout=5)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], [p.cmdline() for p in alive]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

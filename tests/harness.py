"""Building and starting the vCenter simulator harness (tests/vcsim/main.go), shared by
the simulator tier (tests/vsphere) and the end-to-end tier (tests/e2e)."""

import json
import subprocess
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 60          # seconds for the harness to print its ready line (a hang guard)


def build_harness():
    """Path of the harness binary (scripts/build-vcsim builds it once, then caches it)."""
    result = subprocess.run([str(REPO / "scripts" / "build-vcsim")], capture_output=True, text=True,
                            check=False, timeout=600)
    assert result.returncode == 0, f"scripts/build-vcsim failed:\n{result.stderr}"
    return result.stdout.strip().splitlines()[-1]


def start_harness(argv):
    """Start the harness with ``argv``; return (process, its ready line parsed, its stderr
    lines so far — a list that keeps filling). Fails with the harness's stderr when it
    prints no ready line within READY_TIMEOUT."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
    lines = []
    # Drain stderr so the harness never blocks on a full pipe.
    threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()
    timer = threading.Timer(READY_TIMEOUT, process.kill)
    timer.start()
    try:
        line = process.stdout.readline()
    finally:
        timer.cancel()
    assert line, f"vcsim-harness did not start: {''.join(lines)[-2000:]}"
    return process, json.loads(line), lines

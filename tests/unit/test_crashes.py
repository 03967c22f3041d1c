"""The plugin killed (SIGKILL) at a step, then started again: what the next start repairs
or shows. The plugin runs assembled from real settings in a child process, on real
folder stores; the test kills it where it stops and builds it again from the same
settings (a restart)."""

import json
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from plugin.backup.dircopy import DirectoryCopier
from plugin.errors import InUse
from tests.fakes import calls_do_not_wait

from .test_backup_service import Gate, read_tree, write

REPO = Path(__file__).resolve().parents[2]
HANG_GUARD = 60      # seconds the child may take to reach its stop (a hang guard, not a measured figure)

# The plugin, assembled from the test's settings, running cfg["call"]; it prints "stopped"
# and waits at cfg["stop"] until it is killed.
CHILD = r"""
import json, sys
cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["repo"])
from plugin.assembly import build_driver
from plugin.settings import from_env
from tests.fakes import FakeMounter, InlineExecutor

driver = build_driver(from_env(cfg["env"]), mounter=FakeMounter(), executor=InlineExecutor(),
                      scheduler_thread=False)
driver.start()
copier = driver.backups.engines["file"].copier
real_restore = copier.restore

def restore(source, target):
    if cfg["stop"] == "half of the files copied":
        real_restore(source, target)
        for path in sorted(__import__("pathlib").Path(target).rglob("*"))[1:]:
            if path.is_file():
                path.unlink()
    print("stopped", flush=True)
    sys.stdin.read()

copier.restore = restore
driver.create(cfg["name"], cfg["options"])
"""


def run_and_kill(env, name, options, stop):
    """Run the plugin's Create of ``name`` in a child process until ``stop``; SIGKILL it there."""
    cfg = {"repo": str(REPO), "env": env, "name": name, "options": options, "stop": stop}
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([child.stdout], [], [], HANG_GUARD)
        line = child.stdout.readline().strip() if ready else ""
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert line == "stopped", child.stderr.read()


@pytest.mark.parametrize("stop", ["before the copy", "half of the files copied"])
def test_a_plugin_killed_while_it_restores_a_new_volume_goes_on_with_the_restore_at_start(
        make_driver, env, tmp_path, monkeypatch, stop):
    first = make_driver()
    first.create("mydata", {"Backup": "daily"})
    write(tmp_path, "mydata", {"a.txt": "one", "sub/b.txt": "two"})
    first.backups.api_create("mydata")
    first.stop()

    run_and_kill(env, "copy", {"RestoreFrom": "mydata@latest"}, stop)
    gate = Gate(DirectoryCopier).wrap("restore", monkeypatch)      # hold the resumed copy
    again = make_driver()                                            # Docker restarts the plugin
    assert gate.entered.wait(HANG_GUARD)                             # the restore goes on by itself
    assert "copy" in [v["Name"] for v in again.list()]
    assert again.get("copy")["Status"]["Restore"]["State"] == "running"
    with calls_do_not_wait(again), pytest.raises(InUse, match="volume copy is still being restored"):
        again.mount("copy", "c1")                                    # never used half restored
    gate.opened.set()
    again.create("copy", {"RestoreFrom": "mydata@latest"})           # Docker's retry waits for it
    assert read_tree(tmp_path / "fast" / "volumes" / "copy") == {"a.txt": "one", "sub/b.txt": "two"}
    assert again.get("copy")["Status"]["Restore"]["State"] == "done" and again.discovery.marks.get("copy") is None
    again.mount("copy", "c1")

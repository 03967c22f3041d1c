"""A Docker engine of its own inside a test host's network namespace.

Started as scripts/engine starts the single-host one (own --data-root, --exec-root,
socket, pidfile and log in one state folder; no iptables, no default bridge; overlay2
where the kernel has overlayfs, else vfs), but through ``nsenter --net=NS``: only the
network is the host's own (``ip netns exec`` would also remount /sys, and dockerd then
finds no devices cgroup). Mounts, pids and files are the machine's, so what a killed
engine leaves behind is found and ended by its state folder (tests/e2e/leftovers.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from . import leftovers
from .dockercli import docker, docker_json
from ..waiting import wait_until

START_TIMEOUT = 60      # seconds for a started dockerd to answer
STOP_TIMEOUT = 30       # seconds for a SIGTERMed dockerd to exit before SIGKILL
# dockerd 20.10 keeps managed plugins' sockets here whatever --exec-root says.
PLUGIN_RUNTIME_DIR = Path("/run/docker/plugins")


def storage_driver() -> str:
    """scripts/engine's choice: VV_ENGINE_STORAGE_DRIVER, else overlay2 where the kernel
    has overlayfs, else vfs."""
    forced = os.environ.get("VV_ENGINE_STORAGE_DRIVER")
    if forced:
        return forced
    with open("/proc/filesystems") as handle:
        return "overlay2" if any(line.split()[-1:] == ["overlay"] for line in handle) else "vfs"


class NodeEngine:
    """dockerd in network namespace ``netns_path``, its state in ``folder``."""

    def __init__(self, folder: Path, netns_path: str):
        self.folder = Path(folder)
        self.netns_path = netns_path
        self.process: subprocess.Popen | None = None
        self.plugin_ids: list[str] = []    # managed plugins enabled here (their runtime folders)

    @property
    def socket(self) -> Path:
        return self.folder / "docker.sock"

    @property
    def exec_root(self) -> Path:
        return self.folder / "exec"

    @property
    def log_file(self) -> Path:
        return self.folder / "dockerd.log"

    @property
    def env(self) -> dict[str, str]:
        """What a docker client (or the vsphere-volume command) needs to talk to this engine."""
        return {"DOCKER_HOST": f"unix://{self.socket}", "DOCKER_EXEC_ROOT": str(self.exec_root)}

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def docker(self, *args: Any, **kwargs: Any) -> subprocess.CompletedProcess:
        """``docker ARGS`` against this engine (dockercli.docker's keywords)."""
        env = {**self.env, **kwargs.pop("env", {})}
        return docker(*args, env=env, **kwargs)

    def docker_json(self, *args: Any, timeout: float = 120) -> Any:
        return docker_json(*args, timeout=timeout, env=self.env)

    def answers(self) -> bool:
        try:
            return self.docker("version", "-f", "{{.Server.Version}}", check=False, timeout=15).returncode == 0
        except AssertionError:   # timed out
            return False

    def start(self) -> None:
        """Start dockerd (again, after ``kill``: same data-root, so its swarm membership,
        images and enabled plugins come back) and wait until it answers."""
        assert not self.running, f"the engine in {self.folder} runs already"
        for sub in ("root", "exec"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        argv = ["nsenter", f"--net={self.netns_path}", "dockerd",
                "--data-root", str(self.folder / "root"), "--exec-root", str(self.exec_root),
                "-H", f"unix://{self.socket}", "--pidfile", str(self.folder / "pid"),
                "--iptables=false", "--ip6tables=false", "--bridge=none",
                f"--storage-driver={storage_driver()}"]
        with open(self.log_file, "ab") as log:
            # nsenter execs dockerd: the child's pid is dockerd's.
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            # (A dockerd that exited ends the wait at once: its log says why.)
            wait_until(lambda: self.answers() or not self.running, START_TIMEOUT,
                       lambda: f"dockerd in {self.netns_path} does not answer")
            assert self.running, f"dockerd in {self.netns_path} exited"
        except AssertionError as failure:
            self.kill()
            raise AssertionError(f"{failure}; its log ends:\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """As a crash: SIGKILL dockerd, then end what it leaves (containerd, shims, the
        processes of its containers and plugins, by pid), unmount what is mounted below
        its state folder (propagated mounts too), remove its exec-root and its plugins'
        runtime folders.
        Loop devices are the caller's to detach (only vCenter knows whose disks they are)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT)
        self._clean_up()

    def stop(self) -> None:
        """SIGTERM dockerd (it stops its containers and plugins), SIGKILL after
        STOP_TIMEOUT, then the same clean-up as ``kill``."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def remove(self) -> None:
        """Stop it and delete its state folder (images, containers, swarm state) for good."""
        self.stop()
        # rm(1): several times faster than shutil.rmtree on an engine's many small files.
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.folder)], check=False, timeout=STOP_TIMEOUT * 10)

    def _clean_up(self) -> None:
        leftovers.end_processes_of(str(self.folder))
        leftovers.unmount_below(str(self.folder))
        for plugin_id in self.plugin_ids:
            shutil.rmtree(PLUGIN_RUNTIME_DIR / plugin_id, ignore_errors=True)
        # Runtime state only, remade at each start (as scripts/engine does): a stale
        # containerd.pid whose pid was reused would make the next dockerd wait for a
        # containerd that is not there.
        shutil.rmtree(self.exec_root, ignore_errors=True)
        self.socket.unlink(missing_ok=True)

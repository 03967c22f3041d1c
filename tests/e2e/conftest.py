"""Session fixtures of the end-to-end tests: a Docker engine, the test image,
and the vsphere-volume plugin built from this checkout and enabled in it.

``scripts/test`` starts the private engine and exports DOCKER_HOST before
pytest runs; these fixtures also work from a bare ``pytest tests/e2e``.

Environment knobs:
  BASE_IMAGE     image to build on and run test containers from (default
                 local/debian-python:bookworm, made by scripts/base-image)
  VV_KEEP_STATE  set to 1 to keep the plugin's host state folder after the run
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator

import pytest

from .dockercli import docker, run

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"

DEFAULT_IMAGE = "local/debian-python:bookworm"
PLUGIN_NAME = "vsphere"

# Stands for the fresh host folder the ``plugin`` fixture creates under /tmp
# for each session: every setting whose value is STATE_DIR gets its path.
STATE_DIR = "<fresh host state dir>"

# `docker plugin set` settings applied before the plugin is enabled
# (KEY=VALUE: env variables, mount sources such as data.source, ...).
# config.json's settable mount "data" is the plugin's host data folder.
PLUGIN_SETTINGS: Dict[str, str] = {
    "data.source": STATE_DIR,
    # config.json's test-only mount defaults to the production data folder, which
    # does not exist on a test machine: point it at the fresh folder too.
    "test-only-datastores.source": STATE_DIR,
}

# Time the first plugin build may take (dependencies from PyPI on a fresh engine).
BUILD_TIMEOUT = 1800


@dataclass
class Plugin:
    """The plugin installed for this session."""

    name: str  # what `docker volume create -d NAME` takes
    state_dir: str  # host folder given for STATE_DIR settings
    settings: Dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """Full reference (NAME:latest): `docker volume ls` shows it as the
        driver, and `--filter driver=` needs it."""
        return self.name if ":" in self.name else f"{self.name}:latest"


def _engine_answers() -> bool:
    try:
        return run(["docker", "info"], check=False, timeout=30).returncode == 0
    except AssertionError:  # timed out
        return False


def _script(*argv: str, timeout: float) -> subprocess.CompletedProcess:
    """Run one of the project's scripts; fail with its output if it fails."""
    return run([str(SCRIPTS / argv[0]), *argv[1:]], timeout=timeout, cwd=REPO_ROOT)


@pytest.fixture(scope="session")
def engine() -> Iterator[str]:
    """DOCKER_HOST of a Docker engine that answers."""
    started = False
    if not _engine_answers():
        if os.environ.get("DOCKER_HOST"):
            pytest.fail(
                f"no Docker engine answers at DOCKER_HOST={os.environ['DOCKER_HOST']}"
                " (run the tests with scripts/test, or start scripts/engine)"
            )
        _script("engine", "start", timeout=120)
        env_line = _script("engine", "env", timeout=30).stdout.strip()
        # "export DOCKER_HOST=unix://..."
        os.environ["DOCKER_HOST"] = env_line.split("=", 1)[1]
        started = True
    info = docker("info", timeout=60)
    assert "Server Version" in info.stdout, info.stdout
    yield os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if started:
        run([str(SCRIPTS / "engine"), "stop"], check=False, timeout=300)


@pytest.fixture(scope="session")
def test_image(engine: str) -> str:
    """An image with Python 3, pip and the filesystem tools, present in the engine."""
    image = os.environ.get("BASE_IMAGE") or DEFAULT_IMAGE
    if image == DEFAULT_IMAGE:
        _script("base-image", timeout=900)
    else:
        docker("image", "inspect", image)
    return image


def _unmount_below(path: str) -> None:
    """Lazily unmount whatever is mounted below path, deepest first."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        points = {line.split()[4] for line in f}
    # mountinfo escapes blanks as octal (\040).
    points = {p.encode().decode("unicode_escape") for p in points}
    for point in sorted(points, reverse=True):
        if point == real or point.startswith(real + "/"):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _remove_plugin(plugin: Plugin) -> None:
    """Best effort: its volumes (and containers using them), then the plugin."""
    volumes = docker("volume", "ls", "-q", "--filter", f"driver={plugin.ref}", check=False)
    for volume in volumes.stdout.split():
        users = docker("ps", "-aq", "--filter", f"volume={volume}", check=False).stdout.split()
        if users:
            docker("rm", "-f", *users, check=False, timeout=60)
        docker("volume", "rm", "-f", volume, check=False, timeout=60)
    docker("plugin", "disable", "-f", plugin.name, check=False, timeout=60)
    docker("plugin", "rm", "-f", plugin.name, check=False, timeout=60)


@pytest.fixture(scope="session")
def plugin(engine: str, test_image: str) -> Iterator[Plugin]:
    """The plugin built from this checkout and enabled, once per session."""
    state_dir = tempfile.mkdtemp(prefix="vsphere-volume-state-", dir="/tmp")
    settings = {k: (state_dir if v == STATE_DIR else str(v)) for k, v in PLUGIN_SETTINGS.items()}
    installed = Plugin(name=PLUGIN_NAME, state_dir=state_dir, settings=settings)
    try:
        _script(
            "build-plugin",
            PLUGIN_NAME,
            *(f"{k}={v}" for k, v in settings.items()),
            timeout=BUILD_TIMEOUT,
        )
        yield installed
    finally:
        _remove_plugin(installed)
        if os.environ.get("VV_KEEP_STATE") != "1":
            _unmount_below(state_dir)
            shutil.rmtree(state_dir, ignore_errors=True)

"""The project as the end-to-end tests drive it: its scripts, its default image, and
where the plugin's config.json puts things inside the plugin."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .dockercli import run

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"

DEFAULT_IMAGE = "local/debian-python:bookworm"   # made by scripts/base-image
PLUGIN_NAME = "vsphere"

# Inside the plugin (config.json): the data folder and the test-only mount.
PLUGIN_DATA_DIR = "/var/lib/vsphere-volume"
PLUGIN_DATASTORES_DIR = "/test-only/datastores"

# Host folders below a plugin's host state folder: the simulator's datastore folders
# (the plugin's test-only mount), and its CA and password files (in the plugin's data
# folder, where the plugin sees them below PLUGIN_DATA_DIR).
DATASTORES_SUBDIR = "datastores"
SECRETS_SUBDIR = "vsphere"

# Time the first plugin build may take (dependencies from PyPI on a fresh engine).
BUILD_TIMEOUT = 1800


def script(*argv: str, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run one of the project's scripts (``env`` added to the environment); fail with
    its output if it fails."""
    return run([str(SCRIPTS / argv[0]), *argv[1:]], timeout=timeout, cwd=REPO_ROOT, env=env)

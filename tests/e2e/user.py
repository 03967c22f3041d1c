"""What a user types, as helpers: names, `docker volume inspect`, a container over a
volume, the vsphere-volume command."""

import json
import os
from contextlib import contextmanager
import subprocess
import sys
import uuid

from .dockercli import docker

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def inspect(name):
    return json.loads(docker("volume", "inspect", name).stdout)[0]


def volume_names():
    return set(docker("volume", "ls", "-q").stdout.split())


def run_on(image, volume_name, script, *extra):
    """`docker run --rm -v volume_name:/data image sh -c script`; its stdout."""
    return docker("run", "--rm", "--network", "none", *extra, "-v", f"{volume_name}:/data", image,
                  "sh", "-c", script).stdout


@contextmanager
def running_on(image, volume_name, script, prefix="app"):
    """A detached container with ``volume_name`` at /data running ``sh -c script``, then
    ``sleep``; yields its name and removes it at the end of the block."""
    name = unique(prefix)
    docker("run", "-d", "--name", name, "--network", "none", "-v", f"{volume_name}:/data", image,
           "sh", "-c", f"{script} && sleep 300")
    try:
        yield name
    finally:
        docker("rm", "-f", name)


def vv(plugin, *args, check=True):
    """Run the vsphere-volume command; return (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "plugin.cli", "--plugin", plugin.name, *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    if check:
        assert done.returncode == 0, f"vsphere-volume {' '.join(args)}: {done.stderr}"
    return done.returncode, done.stdout, done.stderr


def backups(plugin, name):
    return json.loads(vv(plugin, "backups", name, "--json")[1])

"""A second site for the disaster-recovery tests: another Docker host with the plugin,
on another vCenter.

``start_second_site(folder, build_host, image, settings)`` starts, in the root network
namespace, a private Docker engine of its own (``scripts/engine`` with its own
``VV_ENGINE_DIR``), a second vCenter simulator (its own datastores and certificate), the
test image, and this checkout's plugin as ``vsphere`` (built by ``build_host``, whose
build cache makes that quick) with the simulator's settings, its own data folder, the
datastore stores of the first site's spelling, and ``settings`` added (the off-site
target and its key, say). The plugin uses the host network, so it reaches the same
loopback servers (an S3 server) as the first site's. ``SecondSite.stop`` undoes all of it.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests import simulator
from tests.simulator import Simulator

from .dockercli import docker, run
from .leftovers import unmount_below
from .project import PLUGIN_DATA_DIR, PLUGIN_DATASTORES_DIR, PLUGIN_NAME, REPO_ROOT, SCRIPTS, SECRETS_SUBDIR, script

START_TIMEOUT = 180
BUILD_TIMEOUT = 900
IMAGE_TIMEOUT = 900
CLI_TIMEOUT = 300


@dataclass
class SecondSite:
    folder: Path                    # everything of the site: engine, plugin data, datastores
    simulator: Simulator | None = None
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def engine_dir(self) -> Path:
        return self.folder / "engine"

    @property
    def state_dir(self) -> Path:
        """The plugin's data folder on the host (``/var/lib/vsphere-volume`` inside it)."""
        return self.folder / "state"

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": f"unix://{self.engine_dir}/docker.sock",
                "DOCKER_EXEC_ROOT": str(self.engine_dir / "exec"), "VV_ENGINE_DIR": str(self.engine_dir)}

    def docker(self, *args: str, check: bool = True, timeout: float = 120):
        return docker(*args, check=check, timeout=timeout, env=self.env)

    def vv(self, *args: str, check: bool = True):
        """The vsphere-volume command against this site's plugin."""
        return run([sys.executable, "-m", "plugin.cli", "--plugin", PLUGIN_NAME, *args], check=check,
                   env=self.env, cwd=REPO_ROOT, timeout=CLI_TIMEOUT)

    def plugin_log(self) -> str:
        try:
            text = (self.engine_dir / "dockerd.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join([line for line in text if "plugin=" in line][-40:])

    def stop(self) -> None:
        """Its volumes and plugin removed, its engine stopped, its simulator stopped, its folder gone."""
        volumes = self.docker("volume", "ls", "-q", check=False).stdout.split()
        for volume in volumes:
            self.docker("volume", "rm", "-f", volume, check=False, timeout=120)
        self.docker("plugin", "disable", "-f", PLUGIN_NAME, check=False, timeout=60)
        run([str(SCRIPTS / "engine"), "stop"], env=self.env, check=False, timeout=START_TIMEOUT)
        if self.simulator is not None:
            self.simulator.release_loop_devices()
            self.simulator.stop()
        unmount_below(str(self.folder))
        shutil.rmtree(self.folder, ignore_errors=True)


def start_second_site(folder: Path, build_host: str, image: str, volume_stores: str,
                      settings: dict[str, str]) -> SecondSite:
    """See the module docstring; ``settings`` may name files below ``site.state_dir`` as
    ``PLUGIN_DATA_DIR/...``: write them there before (``prepare``) or pass ready ones."""
    site = SecondSite(folder=folder)
    try:
        site.state_dir.mkdir(parents=True, exist_ok=True)
        run([str(SCRIPTS / "engine"), "start"], env=site.env, timeout=START_TIMEOUT)
        site.simulator = simulator.start_for_plugin(
            simulator.build_harness(), host_root=folder / "datastores", plugin_root=PLUGIN_DATASTORES_DIR,
            secrets_host=site.state_dir / SECRETS_SUBDIR, secrets_plugin=f"{PLUGIN_DATA_DIR}/{SECRETS_SUBDIR}")
        script("base-image", env=site.env, timeout=IMAGE_TIMEOUT)
        docker("image", "inspect", image, env=site.env)
        site.settings = {**site.simulator.plugin_settings(), "data.source": str(site.state_dir),
                         "test-only-datastores.source": str(folder / "datastores"),
                         "VOLUME_STORES": volume_stores, **settings}
        script("build-plugin", PLUGIN_NAME, *(f"{k}={v}" for k, v in site.settings.items()),
               env={**site.env, "PLUGIN_BUILD_HOST": build_host}, timeout=BUILD_TIMEOUT)
        return site
    except BaseException:
        site.stop()
        raise

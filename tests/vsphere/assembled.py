"""Plugin instances assembled as they run, on the simulator's datastores (the ``plugins``
fixture of conftest.py makes them).

Each is ``build_driver`` over real settings (``from_env``): VOLUME_STORES with two
datastore stores of the simulator (``default`` on LocalDS_1, ``second`` on LocalDS_0),
the VSPHERE_* settings of the harness (CA file, password file, a VM of the simulator as
the Docker host's), VSPHERE_TEST_ONLY_LOOP_DATASTORES and the real
``plugin.mounter.Mounter``, so that Mount attaches the disk, makes and mounts its
filesystem through a loop device and bind-mounts it under the plugin's mount root, as in
production. Only the clock and the scheduler's executor are the test's.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from plugin import assembly
from plugin.assembly import build_driver
from plugin.mounter import Mounter
from plugin.settings import from_env
from tests.fakes import InlineExecutor

DS, DS2 = "LocalDS_1", "LocalDS_0"
CAPACITY = "16M"                 # of the volumes these tests make


def plugin_env(vcsim, folder, store_path, vm):
    """The plugin settings of one instance whose data folder and mount root are in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    password_file = folder / "vsphere-password"
    password_file.write_text(vcsim.password + "\n")
    return {
        "DATA_DIR": str(folder / "data"),
        "MOUNT_ROOT": str(folder / "mnt"),
        "VOLUME_STORES": f"{DS}/{store_path}:default;{DS2}/{store_path}:second",
        "VSPHERE_URL": vcsim.url,
        "VSPHERE_USER": vcsim.user,
        "VSPHERE_PASSWORD_FILE": str(password_file),
        "VSPHERE_CA_FILE": str(vcsim.ca_file),
        "VSPHERE_VM": vm,
        "VSPHERE_TEST_ONLY_LOOP_DATASTORES": json.dumps(vcsim.datastore_folders),
    }


@dataclass
class Plugin:
    """One assembled, started plugin instance."""

    driver: object
    env: dict
    folder: Path
    hostname: str

    @property
    def service(self):
        return self.driver.backups

    @property
    def session(self):
        return self.driver.stores["default"].session

    @property
    def mount_root(self):
        return Path(self.env["MOUNT_ROOT"])

    def before(self, method, hook):
        """Run ``hook(kwargs)`` before each vSphere task ``method`` this plugin starts."""
        session = self.session
        real = session.call_task

        def call_task(obj, called, /, *args, **kwargs):
            if called == method:
                hook(kwargs)
            return real(obj, called, *args, **kwargs)
        session.call_task = call_task


def assemble(env, clock, hostname):
    """build_driver as the plugin's server does, with the test's clock and executor; started."""
    real_hostname = assembly.socket.gethostname
    assembly.socket.gethostname = lambda: hostname      # the lease owner names this host
    try:
        driver = build_driver(from_env(env), mounter=Mounter(), clock=clock, executor=InlineExecutor(),
                              scheduler_thread=False)
    finally:
        assembly.socket.gethostname = real_hostname
    driver.start()
    return driver

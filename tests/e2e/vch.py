"""The stand-in VCH of the sidecar tests, and the TLS material around it.

A real VCH is a VM that serves the Docker Engine API with TLS and creates volumes in
VIC's layout in its volume stores. The stand-in is what this machine can run: a second
private Docker engine (``scripts/engine`` with its own ``VV_ENGINE_DIR``) that also
serves the Docker API on ``tcp://127.0.0.1:PORT`` with verified TLS both ways
(``--tlsverify``), with this plugin enabled in it under the name ``vsphere`` in direct
mode against the same vCenter simulator, with the VCH's volume stores. So it speaks the
real Docker API, refuses with a real Docker engine's messages, and creates and deletes
volumes in VIC's layout on the simulator's datastores. Its plugin is built by
``scripts/build-plugin`` with ``PLUGIN_BUILD_HOST`` set to the session's engine, whose
build cache makes that a matter of seconds.

``make_tls`` makes, with the openssl command, a CA, the VCH's server certificate (for
127.0.0.1), a client certificate, and a second, unrelated CA (the "wrong CA"); the client
files are named as ``DOCKER_CERT_PATH`` wants them (ca.pem, cert.pem, key.pem), so the
docker CLI reaches the VCH the way a VIC user's does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .dockercli import docker, run
from .project import REPO_ROOT, SCRIPTS

START_TIMEOUT = 180          # seconds for the engine to start (a hang guard)
BUILD_TIMEOUT = 900          # seconds for the plugin install (a fresh build takes minutes)


def _openssl(*args: str, cwd: Path) -> None:
    run(["openssl", *args], cwd=cwd, timeout=60)


def _key_and_request(cwd: Path, name: str, subject: str) -> None:
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", subject, cwd=cwd)


def _ca(cwd: Path, name: str, subject: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}-key.pem", "-out", f"{name}.pem", "-days", "2", "-subj", subject, cwd=cwd)


def _sign(cwd: Path, name: str, ca: str, extensions: str) -> None:
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
             "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=cwd)


@dataclass(frozen=True)
class Tls:
    """Host paths of the TLS files: the CA, the VCH's server certificate and key, the
    client folder (a DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem) and a CA that signed
    nothing of the VCH's."""

    ca: Path
    server_cert: Path
    server_key: Path
    client: Path
    wrong_ca: Path


def make_tls(folder: Path) -> Tls:
    """A CA, the VCH's server certificate (127.0.0.1), a client certificate and a wrong CA."""
    folder.mkdir(parents=True, exist_ok=True)
    _ca(folder, "ca", "/CN=stand-in VCH CA")
    _ca(folder, "wrong-ca", "/CN=some other CA")
    _key_and_request(folder, "server", "/CN=127.0.0.1")
    _sign(folder, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                  "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n")
    _key_and_request(folder, "client", "/CN=vsphere-volume sidecar")
    _sign(folder, "client", "ca", "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n")
    client = folder / "client"
    client.mkdir()
    for source, target in (("ca.pem", "ca.pem"), ("client.pem", "cert.pem"), ("client-key.pem", "key.pem")):
        shutil.copy(folder / source, client / target)
    for path in folder.rglob("*.pem"):
        path.chmod(0o600)
    return Tls(ca=folder / "ca.pem", server_cert=folder / "server.pem", server_key=folder / "server-key.pem",
               client=client, wrong_ca=folder / "wrong-ca.pem")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class StandInVch:
    """A second private engine serving the Docker API with TLS on 127.0.0.1:``port``."""

    engine_dir: Path
    port: int
    tls: Tls
    state_dir: Path                      # the data folder of the plugin in it
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def _engine_env(self) -> dict[str, str]:
        flags = [f"-H tcp://127.0.0.1:{self.port}", "--tlsverify", f"--tlscacert {self.tls.ca}",
                 f"--tlscert {self.tls.server_cert}", f"--tlskey {self.tls.server_key}"]
        return {"VV_ENGINE_DIR": str(self.engine_dir), "VV_ENGINE_EXTRA_FLAGS": " ".join(flags)}

    @property
    def socket_host(self) -> str:
        """DOCKER_HOST of its unix socket (how the scripts reach it)."""
        return f"unix://{self.engine_dir}/docker.sock"

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """``docker ARGS`` against the VCH over TCP with verified TLS, as a VIC user runs it."""
        return docker(*args, check=check, timeout=timeout,
                      env={"DOCKER_HOST": self.url, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.tls.client)})

    def says(self, *args: str) -> str:
        """What the VCH answers ``docker ARGS`` with when it refuses (its message, verbatim)."""
        result = self.docker(*args, check=False)
        assert result.returncode != 0, f"the VCH accepted docker {' '.join(args)}: {result.stdout}"
        return result.stderr.strip().removeprefix("Error response from daemon: ")

    def volume_names(self) -> list[str]:
        return self.docker("volume", "ls", "-q").stdout.split()

    def start(self) -> None:
        run([str(SCRIPTS / "engine"), "start"], env=self._engine_env, timeout=START_TIMEOUT)

    def stop(self, keep: bool = True) -> None:
        """Stop its engine; ``keep``: as a shutdown (its volumes and plugin come back at
        start); otherwise for good, its containers, volumes and plugin removed first."""
        run([str(SCRIPTS / "engine"), "stop", *(["--keep"] if keep else [])], env=self._engine_env,
            timeout=START_TIMEOUT)

    def remove_state(self) -> None:
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def install_plugin(self, build_host: str, settings: dict[str, str]) -> None:
        """This checkout's plugin, as ``vsphere``, with ``settings`` (built by ``build_host``)."""
        self.settings = dict(settings)
        run([str(SCRIPTS / "build-plugin"), "vsphere", *(f"{k}={v}" for k, v in settings.items())],
            env={"DOCKER_HOST": self.socket_host, "PLUGIN_BUILD_HOST": build_host,
                 "VV_ENGINE_DIR": str(self.engine_dir)},
            cwd=REPO_ROOT, timeout=BUILD_TIMEOUT)

    def plugin_log(self) -> list[str]:
        """The stand-in plugin's output (for failure messages)."""
        with open(self.engine_dir / "dockerd.log", errors="replace") as handle:
            return [line for line in handle if "plugin=" in line][-40:]


def start_stand_in(engine_dir: Path, tls: Tls) -> StandInVch:
    """Start the stand-in's engine (no plugin yet) on a free port, after stopping one an
    interrupted run may have left there; its state folder is a fresh temp folder."""
    vch = StandInVch(engine_dir=engine_dir, port=free_port(), tls=tls,
                     state_dir=Path(tempfile.mkdtemp(prefix="vsphere-volume-vch-state-", dir="/tmp")))
    vch.stop(keep=False)
    vch.start()
    return vch


def stand_in_settings(vch: StandInVch, sidecar_settings: dict[str, str], secrets: Path, volume_stores: str,
                      vm: str) -> dict[str, str]:
    """The stand-in plugin's settings: the sidecar's vCenter connection with another VM as
    its own (``vm``) and its own data folder (the simulator's CA and password file are
    copied there from ``secrets``, at the same place inside the plugin), the same
    datastore folders, and the VCH's ``volume_stores``."""
    shutil.copytree(secrets, vch.state_dir / secrets.name)
    names = ("VSPHERE_URL", "VSPHERE_USER", "VSPHERE_PASSWORD_FILE", "VSPHERE_CA_FILE",
             "VSPHERE_TEST_ONLY_LOOP_DATASTORES", "test-only-datastores.source")
    settings = {key: sidecar_settings[key] for key in names}
    settings.update({"data.source": str(vch.state_dir), "metrics-textfile.source": str(vch.state_dir),
                     "VSPHERE_VM": vm, "VOLUME_STORES": volume_stores})
    return settings

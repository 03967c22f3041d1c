"""A client of the plugin's own socket, for the ``vsphere-volume`` command and tests.

It speaks the same protocol Docker does: POST a JSON object, get a JSON object back,
``Err`` set on failure.
"""

import glob
import http.client
import json
import os
import socket

from .errors import VolumeError


class PluginUnreachable(VolumeError):
    """The plugin's socket cannot be found or does not answer."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class PluginClient:
    def __init__(self, socket_path, timeout=30):
        self.socket_path = socket_path
        self.timeout = timeout

    def call(self, path, body=None, timeout=None):
        """POST ``body`` to ``path``; return the reply, or raise VolumeError with its Err."""
        connection = _UnixConnection(self.socket_path, timeout or self.timeout)
        try:
            connection.request("POST", path, body=json.dumps(body or {}),
                               headers={"Content-Type": "application/vnd.docker.plugins.v1+json"})
            response = connection.getresponse()
            reply = json.loads(response.read() or b"{}")
        except (OSError, http.client.HTTPException) as err:
            raise PluginUnreachable(f"the plugin at {self.socket_path} does not answer: {err}") from None
        finally:
            connection.close()
        if reply.get("Err"):
            raise VolumeError(reply["Err"])
        return reply


def find_socket(plugin_name="vsphere", exec_roots=None):
    """The host path of an enabled managed plugin's socket.

    Docker keeps a managed plugin's socket in ``<exec root>/plugins/<plugin id>/``; the
    id comes from ``docker plugin inspect`` (through the docker SDK). ``exec_roots``
    defaults to $DOCKER_EXEC_ROOT, then /run/docker and /var/run/docker.
    """
    import docker  # only this lookup needs the SDK

    try:
        client = docker.from_env()
        plugin = client.plugins.get(plugin_name)
    except docker.errors.NotFound:
        raise PluginUnreachable(f"no Docker plugin named {plugin_name}: install it first "
                                "(scripts/build-plugin) or give --socket") from None
    except docker.errors.DockerException as err:
        raise PluginUnreachable(f"cannot ask Docker where plugin {plugin_name} is: {err}") from None
    if not plugin.enabled:
        raise PluginUnreachable(f"plugin {plugin_name} is disabled: docker plugin enable {plugin_name}")
    roots = exec_roots or [r for r in (os.environ.get("DOCKER_EXEC_ROOT"), "/run/docker", "/var/run/docker") if r]
    socket_name = plugin.attrs.get("Config", {}).get("Interface", {}).get("Socket", "vsphere.sock")
    for root in roots:
        for candidate in glob.glob(os.path.join(root, "plugins", plugin.id, socket_name)):
            return candidate
    raise PluginUnreachable(
        f"plugin {plugin_name} is enabled but its socket is not under {', '.join(roots)}: "
        "set DOCKER_EXEC_ROOT to the engine's --exec-root, or give --socket")

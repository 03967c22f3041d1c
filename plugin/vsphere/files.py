"""Small datastore files (volume metadata) over the datastore's HTTP file interface.

``GET`` and ``PUT`` of ``https://vcenter/folder/<path>?dcPath=<datacenter>&dsName=<ds>``
through ``Session.http`` (session cookie, same certificate checks, counted). A PUT
creates missing parent folders. Deleting goes through FileManager tasks instead
(``DeleteDatastoreFile_Task``), which removes whole folders and which the simulator
implements; its HTTP handler ignores DELETE.
"""

import contextvars
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from ..errors import FileNotFoundOnDatastore, VolumeError, VSphereError


def folder_url(path):
    """The URL path of datastore file ``path`` (relative to the datastore root)."""
    return "/folder/" + quote(path.strip("/"), safe="/")


class DatastoreFiles:
    """Read and write whole small files on the datastores of ``session``'s datacenter."""


    def __init__(self, session):
        self.session = session

    def _request(self, method, datastore, path, data=None, what=""):
        params = {"dcPath": self.session.datacenter.path, "dsName": datastore}
        response = self.session.http(method, folder_url(path), params=params, data=data, what=what)
        if response.status_code == 404:
            raise FileNotFoundOnDatastore(f"{what} failed: it does not exist")
        if not 200 <= response.status_code < 300:
            raise VSphereError(f"{what} failed: HTTP {response.status_code} {response.reason}")
        return response

    def read(self, datastore, path):
        """The bytes of ``[datastore] path``; FileNotFoundOnDatastore if it is missing."""
        return self._request("GET", datastore, path, what=f"reading [{datastore}] {path}").content

    def read_many(self, datastore, paths, workers=8):
        """{path: bytes, or the VolumeError reading it raised} for every path, read by
        ``workers`` threads at once; their round trips count in the caller's scope."""
        def read(path):
            try:
                return path, self.read(datastore, path)
            except VolumeError as err:
                return path, err

        paths = list(paths)
        if not paths:
            return {}
        context = contextvars.copy_context()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return dict(pool.map(lambda path: context.copy().run(read, path), paths))

    def write(self, datastore, path, data):
        """Create or replace ``[datastore] path`` with ``data`` (bytes)."""
        self._request("PUT", datastore, path, data=data, what=f"writing [{datastore}] {path}")

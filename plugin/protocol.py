"""Docker's volume plugin protocol over HTTP: JSON in, JSON out, nothing of storage.

``create_app(driver)`` builds the Flask app. Every endpoint is a POST whose body is
JSON (possibly empty, with Docker's ``application/vnd.docker.plugins.v1+json`` type or
none). A ``VolumeError`` becomes ``{"Err": message}`` with status 500, which Docker shows
to the user; any other exception is logged with its traceback and reported as an
internal error without details.

An ``observe(endpoint, result, seconds)`` callable, when given, is told every call
answered: its endpoint (``VolumeDriver.Get``, ``Backup.Create``), ``ok`` or ``error``
(an Err answer), and the seconds it took (the metrics count them). What it raises is
logged, never the call's answer.
"""

import json
import logging
import time

from flask import Flask, request

from .errors import InvalidRequest, VolumeError, cut

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"
MAX_ERR = 2000   # characters of an Err: messages cut what they echo; this is the last guard


def _body():
    """The request's JSON object; {} for an empty body. Raises InvalidRequest otherwise."""
    raw = request.get_data()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidRequest("the request body is not valid JSON") from None
    except RecursionError:
        raise InvalidRequest("the request body is not a plugin request: its JSON is nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def _field(body, key, kind=str, required=True):
    value = body.get(key)
    if value is None:
        if required:
            raise InvalidRequest(f"the request has no {key}")
        return kind()
    if not isinstance(value, kind):
        raise InvalidRequest(f"{key} must be a {kind.__name__}")
    return value


def _reply(payload, status=200):
    return payload, status, {"Content-Type": CONTENT_TYPE}


def _observed(observe, path, answer):
    """``answer()``, with ``observe`` told how the call at ``path`` ended and how long it took."""
    started = time.perf_counter()
    reply = answer()
    try:
        observe(path.lstrip("/"), "ok" if reply[1] == 200 else "error", time.perf_counter() - started)
    except Exception:   # the call's answer stands
        log.exception("the call observer failed on %s", path)
    return reply


def create_app(driver, backup_api=None, observe=None, describe=None):
    """The plugin's WSGI app over ``driver`` (a driver.VolumeDriver or a stand-in).

    ``backup_api``, when given, serves the ``/Backup.*`` endpoints: an object with
    api_create(name), api_list(name, backup_target), api_restore(name, backup, target,
    force, backup_target, path), api_delete(name, backup), api_prune(name),
    api_progress(name), and for backup targets api_targets(), api_copy(name,
    backup_target), api_verify(backup_target, read) (``backup.service.BackupService``).
    ``observe``: see the module docstring. ``describe()`` answers ``/Plugin.Status`` (default: ``driver.describe``).
    """
    app = Flask("vsphere-volume")
    app.json.sort_keys = False   # Docker does not care; sorting a List of 1,000 volumes does cost
    describe = describe or driver.describe

    def endpoint(path):
        def register(handler):
            def answer():
                try:
                    body = _body()
                    log.debug("%s %s", path, cut(body.get("Name", "")))
                    return _reply(handler(body))
                except VolumeError as err:
                    message = cut(err, MAX_ERR)
                    log.info("%s refused: %s", path, message)
                    return _reply({"Err": message}, 500)
                except Exception:
                    log.exception("%s failed", path)
                    return _reply({"Err": f"internal error in {path}; see the plugin log"}, 500)

            def view():
                return _observed(observe, path, answer) if observe is not None else answer()
            app.add_url_rule(path, path, view, methods=["POST"])
            return handler
        return register

    @endpoint("/Plugin.Activate")
    def activate(_):
        return {"Implements": ["VolumeDriver"]}

    @endpoint("/VolumeDriver.Create")
    def create(body):
        driver.create(_field(body, "Name"), _field(body, "Opts", dict, required=False))
        return {"Err": ""}

    @endpoint("/VolumeDriver.Remove")
    def remove(body):
        driver.remove(_field(body, "Name"))
        return {"Err": ""}

    @endpoint("/VolumeDriver.Mount")
    def mount(body):
        return {"Mountpoint": driver.mount(_field(body, "Name"), _field(body, "ID", required=False)),
                "Err": ""}

    @endpoint("/VolumeDriver.Unmount")
    def unmount(body):
        driver.unmount(_field(body, "Name"), _field(body, "ID", required=False))
        return {"Err": ""}

    @endpoint("/VolumeDriver.Path")
    def path(body):
        return {"Mountpoint": driver.path(_field(body, "Name")), "Err": ""}

    @endpoint("/VolumeDriver.Get")
    def get(body):
        return {"Volume": driver.get(_field(body, "Name")), "Err": ""}

    encoded_list = [(None, b"")]   # (the driver's List reply, its JSON): re-encoded when it changes

    @endpoint("/VolumeDriver.List")
    def list_volumes(_):
        volumes = driver.list()
        source, body = encoded_list[0]
        if volumes is not source:
            body = json.dumps({"Volumes": volumes, "Err": ""}).encode()
            encoded_list[0] = (volumes, body)
        return body

    @endpoint("/VolumeDriver.Capabilities")
    def capabilities(_):
        return {"Capabilities": driver.capabilities()}

    @endpoint("/Plugin.Status")
    def plugin_status(_):
        """Not part of Docker's protocol: what `vsphere-volume status` prints."""
        return describe()

    @endpoint("/Volume.Detach")
    def volume_detach(body):
        """Not part of Docker's protocol: `vsphere-volume detach` (see driver.detach)."""
        only = body.get("From")      # absent: any VM; a list: the VMs the operator confirmed
        if only is not None and not (isinstance(only, list) and all(isinstance(vm, str) for vm in only)):
            raise InvalidRequest("From must be a list of VM names")
        reply = driver.detach(_field(body, "Name"), force=_field(body, "Force", bool, required=False),
                              plan=_field(body, "Plan", bool, required=False), only=only)
        return dict(reply, Err="")

    if backup_api is not None:
        @endpoint("/Backup.Create")
        def backup_create(body):
            return {"Backup": backup_api.api_create(_field(body, "Name")), "Err": ""}

        @endpoint("/Backup.List")
        def backup_list(body):
            # With a BackupTarget, the Name may be left out: every volume's backups there.
            where = _field(body, "BackupTarget", required=False)
            return {"Backups": backup_api.api_list(_field(body, "Name", required=not where), where), "Err": ""}

        @endpoint("/Backup.Restore")
        def backup_restore(body):
            result = backup_api.api_restore(
                _field(body, "Name"), _field(body, "Backup", required=False) or "latest",
                _field(body, "Target", required=False), _field(body, "Force", bool, required=False),
                _field(body, "BackupTarget", required=False), _field(body, "Path", required=False))
            return {"Restore": result, "Err": ""}

        @endpoint("/Backup.Targets")
        def backup_targets(_):
            return {**backup_api.api_targets(), "Err": ""}

        @endpoint("/Backup.Copy")
        def backup_copy(body):
            return {"Copies": backup_api.api_copy(_field(body, "Name"), _field(body, "BackupTarget", required=False)),
                    "Err": ""}

        @endpoint("/Backup.Verify")
        def backup_verify(body):
            result = backup_api.api_verify(_field(body, "BackupTarget"), _field(body, "Read", required=False))
            return {"Verification": result, "Err": ""}

        @endpoint("/Backup.Delete")
        def backup_delete(body):
            backup_api.api_delete(_field(body, "Name"), _field(body, "Backup"))
            return {"Err": ""}

        @endpoint("/Backup.Progress")
        def backup_progress(body):
            return {"Progress": backup_api.api_progress(_field(body, "Name")), "Err": ""}

        @endpoint("/Backup.Prune")
        def backup_prune(body):
            return {"Deleted": backup_api.api_prune(_field(body, "Name")), "Err": ""}

    return app

"""The one vSphere session: every call to vCenter goes through it.

``Session(settings)`` logs in with pyVmomi (``SoapStubAdapter`` and an ``ssl.SSLContext``
from ``tls.new_context``) on first use or on ``login()``, and then offers:

- ``invoke(obj, method, *args, what=..., **kwargs)``: one SOAP call. Transport failures
  (connection refused or reset, the server gone mid-call, HTTP 502/503/504) are retried
  with the bounded ``Backoff`` and the injected ``sleep``, then raise VSphereUnavailable.
  ``NotAuthenticated`` leads to one new login (under a lock, once for all threads that
  saw the same expired session) and one more try. A certificate that does not verify
  raises VSphereTLSError. vSphere faults raise the typed errors of ``plugin.errors``.
- ``get_properties(obj_or_list, paths)`` and ``retrieve(specs)``: property reads, only
  through the PropertyCollector (never lazy attribute access).
- ``wait_for_task(task, what)`` and ``call_task(...)``: a task is awaited by reading
  only ``info.state``, ``info.error`` and ``info.result`` through the PropertyCollector,
  with growing pauses, until ``task_timeout`` seconds of the injected ``clock``.
- ``http(method, path, ...)``: the datastore file interface (``/folder/...``) with the
  session's cookie and the same certificate verification (``requests``).
- ``counting()``: a per-operation Counter of round trips (see ``roundtrips``); every
  SOAP request is counted by the stub itself, every HTTP request by ``http``.
- ``observe(observer)``: a ``roundtrips.SessionObserver`` (metrics) is told every round trip by
  method, every fault and connection failure by type (``faults.fault_name``: retried
  ones too, a task's error, an HTTP 401 as ``http.401``), and every re-login after an
  expired session. What it raises is logged, never the call's failure.

Secrets (password, cookie) are never logged and never part of an error message.
Thread-safe: calls may come from several threads; pyVmomi's stub pools connections.
"""

import http.client
import logging
import threading
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from pyVmomi import vim, vmodl

from ..errors import ConfigError, TaskTimeout, VSphereAuthError
from . import faults, tls
from .connection import http_session, soap_stub
from .retry import Backoff, Polling
from .roundtrips import RoundTrips

log = logging.getLogger(__name__)

TASK_PATHS = ["info.state", "info.error", "info.result"]
BACKOFF, POLLING = Backoff(), Polling()         # the defaults (frozen: safe to share)


@dataclass(frozen=True)
class Datacenter:
    """The datacenter the session works in: its reference and inventory path."""

    ref: object
    path: str


class Session:
    """One authenticated connection to vCenter; see the module docstring."""

    def __init__(self, settings, *, sleep=time.sleep, clock=time.monotonic,
                 backoff=BACKOFF, polling=POLLING, task_timeout=600.0,
                 request_timeout=120.0, stub_factory=soap_stub, http_factory=http_session):
        self.settings = settings
        self.round_trips = RoundTrips()
        self.backoff = backoff
        self.polling = polling
        self.task_timeout = task_timeout
        self._sleep = sleep
        self._clock = clock
        self._request_timeout = request_timeout
        self._stub_factory = stub_factory
        self._http_factory = http_factory
        self._login_lock = threading.RLock()
        # A refused login is not tried again: the password is read once, at start, and
        # vCenter locks an account out after a few failures (5 by default).
        self._refused = None
        self._generation = 0          # number of successful logins; 0 = never logged in
        self._stub = None
        self._content = None
        self._http = None
        self._datacenter = None

    # --- identity -----------------------------------------------------------------

    @property
    def host(self):
        return self.settings.host

    @property
    def content(self):
        """The ServiceContent (logs in first if needed)."""
        self._ensure_login()
        return self._content

    @property
    def datacenter(self):
        """The Datacenter of VSPHERE_DATACENTER, or the only one (logs in first if needed)."""
        self._ensure_login()
        return self._datacenter

    @property
    def login_generation(self):
        """How many logins succeeded; changes whenever a new session replaced the old."""
        return self._generation

    def counting(self):
        """Context manager yielding a Counter of this thread's round trips in the block."""
        return self.round_trips.counting()

    def observe(self, observer):
        """Tell ``observer`` (a ``roundtrips.SessionObserver``) about round trips, faults
        and re-logins from now on."""
        self.round_trips.observer = observer

    def _failed(self, exc):
        self.round_trips.tell("vsphere_fault", faults.fault_name(exc))

    # --- login --------------------------------------------------------------------

    def login(self):
        """Log in now if not logged in yet. Raises VSphereAuthError, VSphereTLSError,
        VSphereUnavailable, or ConfigError for an unknown datacenter."""
        with self._login_lock:
            if self._refused is not None:
                raise self._refused
            if not self._generation:
                self._login_locked()

    def _ensure_login(self):
        if not self._generation:
            self.login()

    def _relogin(self, expired_generation):
        with self._login_lock:
            if self._generation == expired_generation:
                log.info("vCenter %s: the session is no longer authenticated; logging in again", self.host)
                self._login_locked()
                self.round_trips.tell("relogin")

    def _login_locked(self):
        if self._content is None:
            self._stub = self._stub_factory(self.settings, tls.new_context(self.settings),
                                            self.round_trips.record, self._request_timeout)
            instance = vim.ServiceInstance("ServiceInstance", self._stub)
            self._content = self._transport(instance.RetrieveContent, "connecting")
        what = f"logging in to vCenter {self.host} as {self.settings.user!r}"
        manager = self._content.sessionManager
        try:
            self._transport(lambda: manager.Login(self.settings.user, self.settings.password), what)
        except vmodl.MethodFault as fault:
            error = faults.translate(fault, what)
            if isinstance(fault, vim.fault.InvalidLogin):
                self._refused = error
            raise error from None
        self._generation += 1
        if self._datacenter is None:
            try:
                self._datacenter = self._find_datacenter()
            except BaseException:
                self._generation = 0         # not usable without its datacenter
                raise
        log.info("logged in to vCenter %s as %r (datacenter %s)",
                 self.host, self.settings.user, self._datacenter.path)
        if self.settings.insecure:
            log.warning("VSPHERE_INSECURE=1: the certificate of vCenter %s is not verified", self.host)

    def _find_datacenter(self):
        wanted = self.settings.datacenter
        if wanted:
            ref = self.invoke(self._content.searchIndex, "FindByInventoryPath", wanted,
                              what=f"finding datacenter {wanted!r}")
            if not isinstance(ref, vim.Datacenter):
                raise ConfigError(
                    f"VSPHERE_DATACENTER={wanted!r}: vCenter {self.host} has no datacenter at that path")
            return Datacenter(ref, wanted)
        found = self._container_names(vim.Datacenter)
        if len(found) != 1:
            names = ", ".join(sorted(found.values())) or "none"
            raise ConfigError(
                f"vCenter {self.host} has {len(found)} datacenters ({names}): "
                "set VSPHERE_DATACENTER to the one to use")
        ref, name = next(iter(found.items()))
        return Datacenter(ref, name)

    def _container_names(self, kind):
        """{ref: name} of every object of ``kind`` below the root folder."""
        views = self._content.viewManager
        view = self.invoke(views, "CreateContainerView", self._content.rootFolder, [kind], True,
                           what=f"listing {kind.__name__} objects")
        try:
            contents = self.retrieve([view_filter(view, kind, ["name"])])
        finally:
            self.invoke(view, "DestroyView", what="releasing a container view")
        return {c.obj: props(c).get("name", "") for c in contents}

    def close(self):
        """Log out (best effort) and drop the connections."""
        if self._generation:
            try:
                self._call(self._content.sessionManager, "Logout", what="logging out")
            except Exception as err:  # noqa: BLE001 - closing must not fail
                log.info("vCenter %s: logout failed: %s", self.host, err)
        self._generation = 0
        if self._stub is not None:
            self._stub.DropConnections()
        if self._http is not None:
            self._http.close()

    # --- calls --------------------------------------------------------------------

    def _transport(self, function, what):
        """Run ``function()``, retrying transport failures with the bounded backoff."""
        pauses = self.backoff.delays()
        attempt = 0
        while True:
            attempt += 1
            try:
                return function()
            except Exception as exc:
                self._failed(exc)
                if faults.is_tls_failure(exc):
                    raise faults.tls_error(self.host, exc, self._trust_hint()) from None
                if not faults.is_transient(exc):
                    raise
                pause = next(pauses, None)
                if pause is None:
                    raise faults.unavailable(self.host, what, exc, attempt) from None
                log.warning("vCenter %s: %s: %s: %s; retry %d in %.2fs", self.host, what,
                            type(exc).__name__, exc, attempt, pause)
                self._sleep(pause)

    def _trust_hint(self):
        if self.settings.thumbprint:
            return "Check VSPHERE_THUMBPRINT against the certificate vCenter presents now"
        if self.settings.ca_file:
            return f"VSPHERE_CA_FILE={self.settings.ca_file!r} does not vouch for it"
        return "Set VSPHERE_CA_FILE or VSPHERE_THUMBPRINT (or VSPHERE_INSECURE=1 to not verify it)"

    def _call(self, obj, method, *args, what, check=None, **kwargs):
        """One SOAP call with retries and re-login; faults are raised untranslated.

        ``check(result)`` may raise a fault found inside a result (see ``retrieve``); a
        NotAuthenticated from it leads to a re-login too.
        """
        relogged = False
        while True:
            generation = self._generation
            try:
                result = self._transport(lambda: getattr(obj, method)(*args, **kwargs), what)
                if check is not None:
                    try:
                        check(result)
                    except vmodl.MethodFault as fault:
                        self._failed(fault)
                        raise
                return result
            except vim.fault.NotAuthenticated:
                if relogged or not generation:
                    raise VSphereAuthError(
                        f"{what} failed: vCenter {self.host} does not accept the session, "
                        "even right after a new login") from None
                self._relogin(generation)
                relogged = True

    def invoke(self, obj, method, *args, what=None, **kwargs):
        """Call ``obj.method(*args, **kwargs)`` on vCenter; see the module docstring.

        ``what`` describes the action for error messages ("creating disk [ds] a/b.vmdk").
        """
        return self._invoke(obj, method, args, kwargs, what or method)

    def _invoke(self, obj, method, args, kwargs, what, check=None):
        self._ensure_login()
        try:
            return self._call(obj, method, *args, what=what, check=check, **kwargs)
        except vmodl.MethodFault as fault:
            raise faults.translate(fault, what) from None

    def retrieve(self, specs):
        """All ObjectContent for PropertyCollector filter ``specs`` (pages followed).

        A property that could not be read (``missingSet``) raises its fault: vCenter
        reports an expired session that way too, which then leads to a re-login.
        """
        collector = self.content.propertyCollector
        options = vmodl.query.PropertyCollector.RetrieveOptions()
        result = self._invoke(collector, "RetrievePropertiesEx", (), {"specSet": specs, "options": options},
                              "reading properties", check=_raise_missing)
        contents = []
        while result is not None:
            contents.extend(result.objects or [])
            if not result.token:
                break
            result = self._invoke(collector, "ContinueRetrievePropertiesEx", (), {"token": result.token},
                                  "reading properties", check=_raise_missing)
        return contents

    def get_properties(self, objs, paths):
        """Property values of one object (a dict) or of a list of objects (a list of dicts
        in the same order). Unset properties are absent from the dicts."""
        single = not isinstance(objs, (list, tuple))
        objs = [objs] if single else list(objs)
        if not objs:
            return []
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=o, skip=False) for o in objs],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=list(paths))
                     for kind in {type(o) for o in objs}])
        found = {c.obj: props(c) for c in self.retrieve([spec])}
        values = [found.get(o, {}) for o in objs]
        return values[0] if single else values

    def wait_for_task(self, task, what, timeout=None, progress=None):
        """The task's ``info.result`` once it succeeds; its translated ``info.error`` if it
        fails; TaskTimeout after ``timeout`` (default ``task_timeout``) seconds.
        ``progress(percent)``, when given, is called with the task's ``info.progress``
        each time it is read (vCenter reports it for long tasks such as disk copies)."""
        timeout = self.task_timeout if timeout is None else timeout
        deadline = self._clock() + timeout
        pauses = self.polling.delays()
        paths = TASK_PATHS + ["info.progress"] if progress else TASK_PATHS
        while True:
            info = self.get_properties(task, paths)
            if progress and info.get("info.progress") is not None:
                progress(int(info["info.progress"]))
            state = info.get("info.state")
            if state == vim.TaskInfo.State.success:
                return info.get("info.result")
            if state == vim.TaskInfo.State.error:
                self._failed(info.get("info.error"))
                raise faults.translate(info.get("info.error"), what, task=True)
            pause = next(pauses)
            if self._clock() + pause > deadline:
                raise TaskTimeout(
                    f"{what} did not finish within {timeout:g}s (task {task._moId} is {state}); "
                    "vCenter may still complete it")
            self._sleep(pause)

    def call_task(self, obj, method, *args, what=None, timeout=None, progress=None, **kwargs):
        """``invoke`` a method that returns a task, then ``wait_for_task``."""
        what = what or method
        task = self.invoke(obj, method, *args, what=what, **kwargs)
        return self.wait_for_task(task, what, timeout, progress)

    # --- datastore files over HTTP -------------------------------------------------

    def http(self, method, path, *, params=None, data=None, what):
        """One request to ``https://host<path>`` with the session cookie; returns the
        ``requests.Response`` (any status but 401, which leads to one re-login)."""
        self._ensure_login()
        url = self.settings.base_url + path
        relogged = False
        while True:
            generation = self._generation
            response = self._transport(lambda: self._http_once(method, url, params, data), what)
            if response.status_code == 401:
                self.round_trips.tell("vsphere_fault", "http.401")
            if response.status_code != 401 or relogged:
                return response
            self._relogin(generation)
            relogged = True

    def _http_once(self, method, url, params, data):
        if self._http is None:
            self._http = self._http_factory(self.settings)
        self.round_trips.record(f"http.{method}")
        response = self._http.request(method, url, params=params, data=data,
                                      headers={"Cookie": self._cookie()}, allow_redirects=False,
                                      timeout=self._request_timeout)
        if faults.http_overloaded(response.status_code):
            raise http.client.HTTPException(f"{response.status_code} {response.reason}")
        return response

    def _cookie(self):
        """``name=value`` of the SOAP session cookie, for the file interface."""
        try:
            cookie = SimpleCookie(self._stub.cookie or "")
        except CookieError:
            return ""
        return "; ".join(f"{name}={morsel.coded_value}" for name, morsel in cookie.items())


# --- PropertyCollector helpers ---------------------------------------------------------

def _raise_missing(result):
    """Raise the fault of the first property vCenter could not read, if any."""
    for content in (result.objects if result is not None else None) or []:
        for missing in content.missingSet or []:
            fault = getattr(missing.fault, "fault", missing.fault)   # LocalizedMethodFault or fault
            if isinstance(fault, vmodl.MethodFault):
                raise fault


def props(content):
    """{path: value} of one ObjectContent."""
    return {p.name: p.val for p in content.propSet or []}


def view_filter(view, kind, paths):
    """A FilterSpec reading ``paths`` of every ``kind`` object in a ContainerView."""
    collector = vmodl.query.PropertyCollector
    traverse = collector.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)
    return collector.FilterSpec(
        objectSet=[collector.ObjectSpec(obj=view, skip=True, selectSet=[traverse])],
        propSet=[collector.PropertySpec(type=kind, pathSet=list(paths))])

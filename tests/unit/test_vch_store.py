"""VCH sidecar mode through the driver, against a fake VCH over real store folders.

``FakeVch`` answers the docker SDK calls the plugin makes (``volumes``,
``inspect_volume``, ``create_volume``, ``remove_volume``) the way a VCH does: it makes
and deletes volumes in VIC's layout in the store folders (which the plugin's stores
read), refuses with VIC's own messages, and can be stopped (connection refused), answer
a create of an existing name without error (as a Docker engine does), or have a volume
in use by a container (409). The stores are folder stores wrapped as VCH stores, so the
real driver, backup service and folder backup engine run.
"""

import json
import os
import shutil

import docker.errors
import pytest
import requests.exceptions

from plugin import assembly
from plugin.errors import BackendError, Conflict, InvalidOption, NotFound
from plugin.vch.connection import LISTING_FILE
from plugin.vch.policy import FILE_NAME as POLICY_FILE
from plugin.vch.store import Sidecar, VchStore, sidecar_from_env

VCH_URL = "tcp://vch.example.com:2376"
DS0 = {"VolumeStore": "ds0"}   # no store is labelled default here: creates name one, as on such a VCH


class Response:
    """What docker.errors.APIError reads of an HTTP response."""

    def __init__(self, status):
        self.status_code = status
        self.url = "https://vch.example.com:2376/v1.25/volumes"
        self.reason = {404: "Not Found", 409: "Conflict", 500: "Internal Server Error"}[status]


def api_error(status, message):
    cls = docker.errors.NotFound if status == 404 else docker.errors.APIError
    return cls(f"{status}", response=Response(status), explanation=message)


class FakeVch:
    """The VCH's Docker API as the plugin calls it, over the store folders ``roots``
    ({label: folder}): what it creates and removes are folders in VIC's layout there."""

    def __init__(self, roots):
        self.roots = roots
        self.volumes_made = {}        # name -> store label
        self.calls = []
        self.down = None              # an exception every call raises (the VCH unreachable)
        self.docker_like = False      # answer a create of an existing name without an error
        self.in_use = {}              # name -> container ids referencing it
        self.fail_remove = None

    def _check(self, call):
        self.calls.append(call)
        if self.down is not None:
            raise self.down

    def make(self, name, label="ds0", options=None):
        """Create a volume as ``docker volume create`` on the VCH does."""
        options = dict(options or {}, VolumeStore=label)
        root = self.roots[label]
        os.makedirs(os.path.join(root, "volumes", name))
        meta = os.path.join(root, "volumes_metadata", name)
        os.makedirs(meta)
        with open(os.path.join(meta, "DockerMetaData"), "w") as handle:
            json.dump({"Driver": "vsphere", "DriverOpts": options, "Name": name, "Labels": {},
                       "AttachHistory": [""], "Image": ""}, handle)
        self.volumes_made[name] = label

    def delete(self, name):
        """Delete a volume as ``docker volume rm`` on the VCH does."""
        root = self.roots[self.volumes_made.pop(name)]
        shutil.rmtree(os.path.join(root, "volumes", name))
        shutil.rmtree(os.path.join(root, "volumes_metadata", name))

    # --- the docker SDK's APIClient, as the plugin calls it --------------------------------
    def volumes(self):
        self._check(("list",))
        return {"Volumes": [{"Name": n, "Driver": "vsphere"} for n in sorted(self.volumes_made)] or None}

    def inspect_volume(self, name):
        self._check(("inspect", name))
        if name not in self.volumes_made:
            raise api_error(404, f"get {name}: no such volume")
        return {"Name": name, "Driver": "vsphere"}

    def create_volume(self, name, driver, driver_opts):
        self._check(("create", name, driver, dict(driver_opts)))
        if name in self.volumes_made:
            if self.docker_like:
                return {"Name": name}
            raise api_error(500, f"A volume named {name} already exists. Choose a different volume name.")
        label = driver_opts.get("VolumeStore", "default")
        if label not in self.roots:
            raise api_error(500, f"No volume store named ({label}) exists")
        self.make(name, label, {k: v for k, v in driver_opts.items() if k != "VolumeStore"})
        return {"Name": name}

    def remove_volume(self, name):
        self._check(("remove", name))
        if self.fail_remove is not None:
            raise self.fail_remove
        if name in self.in_use:
            raise api_error(409, f"remove {name}: volume is in use - [{', '.join(self.in_use[name])}]")
        if name not in self.volumes_made:
            raise api_error(404, f"get {name}: no such volume")
        self.delete(name)


REFUSED = requests.exceptions.ConnectionError(
    "HTTPSConnectionPool(host='vch.example.com', port=2376): Max retries exceeded with url: /v1.25/volumes "
    "(Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object>: Failed to establish a new "
    "connection: [Errno 111] Connection refused'))")


class OnlyLabels(Sidecar):
    """Wraps the stores of the given labels (folder stores here) as VCH stores."""

    labels = ("ds0", "ds1")

    def wrap(self, store):
        return VchStore(store, self.connection, self.policies) if store.label in self.labels else store


@pytest.fixture
def roots(tmp_path):
    return {"ds0": str(tmp_path / "ds0"), "ds1": str(tmp_path / "ds1")}


@pytest.fixture
def vch(roots):
    return FakeVch(roots)


@pytest.fixture
def env(tmp_path, roots):
    return {
        "DATA_DIR": str(tmp_path / "data"),
        "MOUNT_ROOT": str(tmp_path / "mnt"),
        "VOLUME_STORES": f"file://{roots['ds0']}:ds0;file://{roots['ds1']}:ds1;file://{tmp_path}/own:own",
        "VCH_URL": VCH_URL,
    }


@pytest.fixture(autouse=True)
def fake_vch(monkeypatch, vch, clock):
    """Sidecar mode's assembly with the fake VCH (and the folder stores ds0, ds1 as VCH stores)."""
    def sidecar(settings):
        parts = sidecar_from_env(settings.env, settings.state_dir, api_factory=lambda _settings, _timeout: vch,
                                 clock=clock, thread=False)
        return OnlyLabels(parts.connection, parts.policies)
    monkeypatch.setattr(assembly, "vch_sidecar", sidecar)


@pytest.fixture
def driver(make_driver, clock):
    return make_driver(clock=clock)


def connection(driver):
    """The VchConnection every VCH store of ``driver`` shares."""
    return driver.stores["ds0"].connection


def policies(env):
    with open(os.path.join(env["DATA_DIR"], "state", POLICY_FILE)) as handle:
        return json.load(handle)["volumes"]


def data(roots, label, name):
    return os.path.join(roots[label], "volumes", name)


def names(driver):
    return sorted(v["Name"] for v in driver.list())


# --- create ------------------------------------------------------------------------------

def test_create_sends_vics_options_only_and_keeps_the_policy_itself(driver, vch, env, roots):
    driver.create("orders", {"backup": "daily", "volumestore": "ds1", "capacity": "2G", "BackupKeep": "3"})
    assert vch.calls[-1] == ("create", "orders", "vsphere", {"VolumeStore": "ds1", "Capacity": "2G"})
    assert os.path.isdir(data(roots, "ds1", "orders"))
    assert policies(env) == {"orders": {"backup": "daily", "BackupKeep": "3"}}
    status = driver.get("orders")["Status"]
    assert status["VolumeStore"] == "ds1" and status["Capacity"] == "2000MB"
    assert status["Options"]["Backup"] == "daily" and status["Options"]["BackupKeep"] == "3"
    assert status["VCH"] == {"URL": VCH_URL, "Reachable": True, "ListedAt": "2026-11-23T00:00:00Z",
                             "Stale": False, "Error": ""}


def test_without_a_store_labelled_default_a_create_must_name_one_as_on_a_vch(driver, vch):
    with pytest.raises(InvalidOption, match=r"^No volume store named \(default\) exists; known volume stores: "
                                            "ds0, ds1, own$"):
        driver.create("plain", {})
    assert not [call for call in vch.calls if call[0] == "create"] and "plain" not in names(driver)
    driver.create("plain", {"volumestore": "ds0"})
    assert vch.calls[-1] == ("create", "plain", "vsphere", {"VolumeStore": "ds0"})


def test_folder_stores_stay_the_plugins_own(driver, vch, tmp_path):
    driver.create("local", {"VolumeStore": "own"})
    assert os.path.isdir(tmp_path / "own" / "volumes" / "local")
    assert not [call for call in vch.calls if call[0] == "create"]
    assert "VCH" not in driver.get("local")["Status"]


@pytest.mark.parametrize("setup, options, says", [
    (lambda vch: vch.make("taken"), DS0, "A volume named taken already exists. Choose a different volume name."),
    (lambda vch: vch.roots.pop("ds1"), {"VolumeStore": "ds1"}, "No volume store named (ds1) exists"),
])
def test_the_vchs_refusals_reach_the_user_verbatim(driver, vch, env, setup, options, says):
    setup(vch)
    with pytest.raises(BackendError) as refused:
        driver.create("taken", dict(options, Backup="daily"))
    assert str(refused.value) == f"the VCH at {VCH_URL} refused to create volume taken: {says}"
    assert "taken" not in names(driver)
    assert not os.path.exists(os.path.join(env["DATA_DIR"], "state", POLICY_FILE))


def test_a_name_the_vch_has_is_left_alone_when_it_answers_the_create_anyway(driver, vch, roots, env):
    vch.docker_like = True
    vch.make("theirs", options={"Capacity": "5G"})
    with pytest.raises(Conflict, match=f"the VCH at {VCH_URL} already has a volume named theirs"):
        driver.create("theirs", {**DS0, "Backup": "daily"})
    assert "theirs" in vch.volumes_made and os.path.isdir(data(roots, "ds0", "theirs"))
    assert ("remove", "theirs") not in vch.calls
    assert not os.path.exists(os.path.join(env["DATA_DIR"], "state", POLICY_FILE))


def test_a_policy_that_cannot_be_recorded_undoes_the_create(driver, vch, env, roots):
    os.makedirs(os.path.join(env["DATA_DIR"], "state", POLICY_FILE))   # the file cannot be written
    with pytest.raises(BackendError) as failed:
        driver.create("half", {**DS0, "Backup": "daily"})
    assert str(failed.value).startswith("volume half was not created: its options could not be recorded "
                                        "(cannot record the options of volume half in ")
    assert str(failed.value).endswith("the volume the VCH had made was removed again")
    assert ("remove", "half") in vch.calls and "half" not in vch.volumes_made
    assert not os.path.exists(data(roots, "ds0", "half")) and "half" not in names(driver)


def test_when_the_undo_fails_too_the_error_says_where_the_volume_is(driver, vch, env):
    os.makedirs(os.path.join(env["DATA_DIR"], "state", POLICY_FILE))
    vch.fail_remove = api_error(500, "disk [ds0] volumes/half/half.vmdk is locked")
    with pytest.raises(BackendError) as failed:
        driver.create("half", {**DS0, "Backup": "daily"})
    message = str(failed.value)
    assert message.startswith(f"volume half was created by the VCH at {VCH_URL}, but its options could not "
                              "be recorded (")
    assert ("and removing it from the VCH again failed (the VCH at tcp://vch.example.com:2376 refused to "
            "remove volume half: disk [ds0] volumes/half/half.vmdk is locked): it exists there without its "
            "backup policy; remove it (docker volume rm half) or keep it so") in message
    assert "half" in vch.volumes_made


# --- remove ------------------------------------------------------------------------------

def test_remove_is_forwarded_after_the_final_backup_and_a_refusal_is_shown_as_is(driver, vch, env, roots):
    driver.create("ledger", {**DS0, "Backup": "daily"})
    with open(os.path.join(data(roots, "ds0", "ledger"), "entry"), "w") as handle:
        handle.write("42\n")
    vch.in_use["ledger"] = ["c0ffee"]
    with pytest.raises(BackendError) as refused:
        driver.remove("ledger")
    assert str(refused.value) == (f"the VCH at {VCH_URL} refused to remove volume ledger: "
                                  "remove ledger: volume is in use - [c0ffee]")
    assert "ledger" in names(driver) and policies(env) == {"ledger": {"Backup": "daily"}}

    del vch.in_use["ledger"]
    driver.remove("ledger")
    assert "ledger" not in vch.volumes_made and not os.path.exists(data(roots, "ds0", "ledger"))
    assert "ledger" not in names(driver) and policies(env) == {}
    finals = [b for b in driver.backups.api_list("ledger") if b["Origin"] == "final"]
    assert len(finals) == 2 and finals[1]["Method"] == "unchanged"     # one before each attempt
    assert os.path.isfile(os.path.join(roots["ds0"], "backups", "ledger", finals[0]["Id"], "data", "entry"))


def test_removing_a_volume_the_vch_no_longer_has_completes(driver, vch):
    driver.create("gone", DS0)
    vch.delete("gone")
    driver.remove("gone")
    assert "gone" not in names(driver)


# --- answering while the VCH is away -------------------------------------------------------

def test_list_and_get_answer_while_the_vch_is_unreachable_and_create_says_why(driver, vch, clock):
    driver.create("kept", {**DS0, "Backup": "weekly"})
    clock.advance(minutes=5)
    vch.down = REFUSED
    assert connection(driver).refresh_all() is False
    assert names(driver) == ["kept"]
    status = driver.get("kept")["Status"]
    assert status["Options"]["Backup"] == "weekly"
    assert status["VCH"] == {
        "URL": VCH_URL, "Reachable": False, "ListedAt": "2026-11-23T00:00:00Z", "Stale": True,
        "Error": f"cannot list its volumes on the VCH at {VCH_URL}: [Errno 111] Connection refused"}
    with pytest.raises(BackendError, match=r"^cannot look up volume new on the VCH at tcp://vch.example.com:2376: "
                                           r"\[Errno 111\] Connection refused$"):
        driver.create("new", DS0)
    assert names(driver) == ["kept"]

    vch.down = None
    assert connection(driver).refresh_all() is True
    assert driver.get("kept")["Status"]["VCH"] == {"URL": VCH_URL, "Reachable": True,
                                                   "ListedAt": "2026-11-23T00:05:00Z", "Stale": False,
                                                   "Error": ""}


def test_a_tls_failure_says_what_to_check(driver, vch):
    vch.down = requests.exceptions.SSLError(
        "HTTPSConnectionPool(host='vch.example.com', port=2376): Max retries exceeded with url: /v1.25/volumes "
        "(Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
        "failed: unable to get local issuer certificate (_ssl.c:1006)')))")
    with pytest.raises(BackendError) as refused:
        driver.create("x", DS0)
    assert str(refused.value) == (
        f"cannot look up volume x on the VCH at {VCH_URL}: the TLS handshake failed ([SSL: CERTIFICATE_VERIFY_FAILED] "
        "certificate verify failed: unable to get local issuer certificate); this plugin uses TLS verified "
        "against the system's CA store. Check VCH_TLS_CA (the CA of the VCH's certificate) and "
        "VCH_TLS_CERT/VCH_TLS_KEY (a client certificate the VCH accepts)")


def test_a_restart_while_the_vch_is_unreachable_lists_what_it_last_listed(make_driver, vch, env, clock):
    first = make_driver(clock=clock)
    first.create("a", {**DS0, "Backup": "daily"})
    first.create("b", DS0)
    vch.make("made-there")                     # never listed by the plugin: unknown while away
    vch.down = REFUSED
    again = make_driver(clock=clock)
    assert names(again) == ["a", "b"]
    status = again.get("a")["Status"]
    assert status["Options"]["Backup"] == "daily"
    assert status["VCH"]["Stale"] is True and status["VCH"]["ListedAt"] == "2026-11-23T00:00:00Z"
    with open(os.path.join(env["DATA_DIR"], "state", LISTING_FILE)) as handle:
        assert json.load(handle) == {"URL": VCH_URL, "ListedAt": "2026-11-23T00:00:00Z", "Names": ["a", "b"]}


def test_a_vch_never_listed_and_unreachable_leaves_the_datastore_to_tell(make_driver, vch, clock):
    vch.make("on-disk")
    vch.down = REFUSED
    assert names(make_driver(clock=clock)) == ["on-disk"]


# --- following the VCH ---------------------------------------------------------------------

def test_the_background_refresh_follows_what_happens_on_the_vch(driver, vch):
    driver.create("stays", DS0)
    driver.create("mounted", DS0)
    driver.mount("mounted", "c1")
    vch.make("made-there", label="ds1", options={"Capacity": "5G"})
    vch.delete("stays")
    vch.delete("mounted")
    assert connection(driver).refresh_all() is True
    assert names(driver) == ["made-there", "mounted"]   # a mounted volume stays until unmounted
    status = driver.get("made-there")["Status"]
    assert status["VolumeStore"] == "ds1" and status["Capacity"] == "5000MB"
    assert status["Options"]["Backup"] == "off"
    driver.unmount("mounted", "c1")
    connection(driver).refresh_all()
    assert names(driver) == ["made-there"]
    with pytest.raises(NotFound):
        driver.get("stays")


def test_a_listing_begun_before_a_change_made_here_does_not_undo_it(driver, vch):
    driver.create("old", DS0)
    store = driver.stores["ds0"]
    start, before = store.begin(), connection(driver).client.list_names()
    driver.create("new", DS0)
    driver.remove("old")
    store.apply(start, before)                       # a refresh that listed before both changes
    driver.discovery.sync_store("ds0", store.names(), store.lookup)
    assert names(driver) == ["new"]


def test_a_vch_volume_in_no_declared_store_is_not_shown(driver, vch, roots, caplog):
    vch.roots["elsewhere"] = roots["ds0"] + "-elsewhere"
    vch.make("foreign", label="elsewhere")
    connection(driver).refresh_all()
    assert "foreign" not in names(driver)
    assert "has volume(s) foreign in none of this plugin's VCH volume stores" in caplog.text


def test_a_steady_vch_costs_one_listing_and_no_datastore_reads(driver, vch, roots, monkeypatch):
    reads = []
    for label in ("ds0", "ds1"):
        inner = driver.stores[label].inner
        monkeypatch.setattr(inner, "discover", lambda inner=inner: reads.append(inner.label) or
                            type(inner).discover(inner))
    driver.create("here", DS0)
    vch.roots["elsewhere"] = roots["ds0"] + "-elsewhere"
    vch.make("foreign", label="elsewhere")
    connection(driver).refresh_all()                  # a name no store shows: both stores read
    assert sorted(reads) == ["ds0", "ds1"]
    connection(driver).refresh_all()                  # nothing new (foreign is known to be elsewhere)
    vch.delete("here")
    connection(driver).refresh_all()                  # a volume gone needs no datastore read either
    assert sorted(reads) == ["ds0", "ds1"] and names(driver) == []
    vch.make("new", label="ds1")
    connection(driver).refresh_all()
    assert len(reads) == 4 and names(driver) == ["new"]


# --- backups of VCH volumes ----------------------------------------------------------------

def test_restore_from_creates_through_the_vch_then_fills_the_volume(driver, vch, roots, env):
    driver.create("src", {"Backup": "daily", "Capacity": "3G", "VolumeStore": "ds1"})
    with open(os.path.join(data(roots, "ds1", "src"), "f"), "w") as handle:
        handle.write("backed up\n")
    driver.backups.api_create("src")
    driver.create("copy", {"RestoreFrom": "src@latest"})
    assert vch.calls[-1] == ("create", "copy", "vsphere", {"Capacity": "3G", "VolumeStore": "ds1"})
    with open(os.path.join(data(roots, "ds1", "copy"), "f")) as handle:
        assert handle.read() == "backed up\n"
    assert policies(env)["copy"] == {"RestoreFrom": "src@latest"}
    assert driver.get("copy")["Status"]["Options"]["RestoreFrom"] == "src@latest"

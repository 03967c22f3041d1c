import errno
import json
import os
import threading
from datetime import timedelta

import pytest

from plugin.backup.lease import Lease, LeaseHeld, LeaseLost, Leases, LocalLeaseFolder
from plugin.errors import (
    BackupStorageError,
    InvalidName,
    NoDiskSpace,
    VolumeError,
    VSphereUnavailable,
)
from tests.filesystems import fill, small_tmpfs


@pytest.fixture
def folder(tmp_path):
    return LocalLeaseFolder(tmp_path / "store")


@pytest.fixture
def host_a(folder, clock):
    return Leases(folder, "host-a (plugin pid 10)", clock)


@pytest.fixture
def host_b(folder, clock):
    return Leases(folder, "host-b (plugin pid 20)", clock)


def test_take_makes_a_folder_with_the_owner_inside(host_a, folder, clock):
    lease = host_a.take("pgdata")
    path = folder.root / "pgdata" / "owner.json"
    assert folder.root.parent.name == "backups" and path.is_file()
    stored = Lease.decode(path.read_bytes())
    assert stored == lease and stored.owner == "host-a (plugin pid 10)"
    assert stored.expires == clock() + timedelta(minutes=10)


def test_a_held_lease_is_refused_with_holder_and_expiry(host_a, host_b, clock):
    host_a.take("pgdata")
    clock.advance(minutes=9)
    with pytest.raises(LeaseHeld, match=r"volume 'pgdata' is busy: host-a \(plugin pid 10\) is backing it up; "
                                        r"its backup lease runs until 2026-11-23 00:10:00 UTC; try again later"):
        host_b.take("pgdata")
    with pytest.raises(LeaseHeld):
        host_a.take("pgdata")  # one backup at a time on the same host too
    assert host_b.take("other").volume == "other"


def test_a_refusal_says_what_the_holder_is_doing(host_a, host_b, folder):
    host_a.take("pgdata", "restoring its backup 20261122T020000Z into volume copy")
    with pytest.raises(LeaseHeld, match=r"^volume 'pgdata' is busy: host-a \(plugin pid 10\) is restoring its "
                                        r"backup 20261122T020000Z into volume copy; its backup lease runs until"):
        host_b.take("pgdata", "deleting its backup 20261122T020000Z")
    # A lease written by an older plugin says nothing of its purpose: no guess.
    stored = json.loads((folder.root / "pgdata" / "owner.json").read_text())
    del stored["purpose"]
    (folder.root / "pgdata" / "owner.json").write_text(json.dumps(stored))
    with pytest.raises(LeaseHeld, match=r"^volume 'pgdata' is busy: host-a \(plugin pid 10\) holds its backup "
                                        r"lease until 2026-11-23 00:10:00 UTC; try again later$"):
        host_b.take("pgdata")


def test_renew_extends_and_release_frees(host_a, host_b, folder, clock):
    lease = host_a.take("v")
    clock.advance(minutes=8)
    lease = host_a.renew(lease)
    assert lease.expires == clock() + timedelta(minutes=10)
    clock.advance(minutes=8)
    with pytest.raises(LeaseHeld):
        host_b.take("v")  # still held thanks to the renewal
    assert host_a.release(lease)
    assert not (folder.root / "v").exists()
    assert host_b.take("v").owner.startswith("host-b")


def test_an_expired_lease_is_broken_and_its_holder_finds_out(host_a, host_b, folder, clock):
    old = host_a.take("v")
    clock.advance(minutes=10)
    new = host_b.take("v")
    assert host_b.holder("v") == new
    with pytest.raises(LeaseLost, match=r"no longer this host's: it is now held by host-b"):
        host_a.renew(old)
    assert not host_a.release(old)  # never removes another holder's lease
    assert host_b.holder("v") == new
    assert [p.name for p in folder.root.iterdir()] == ["v"]  # nothing left aside


def test_a_folder_without_owner_is_held_for_a_while_then_broken(host_a, folder, clock):
    (folder.root / "v").mkdir(parents=True)
    made = clock().timestamp()
    os.utime(folder.root / "v", (made, made))
    with pytest.raises(LeaseHeld, match="an unknown owner"):
        host_a.take("v")
    clock.advance(minutes=10)
    assert host_a.take("v").owner.startswith("host-a")


class SteppedWaiter:
    """A waiter the test steps: each ``step`` lets the renewal thread renew once."""

    def __init__(self):
        self.cond = threading.Condition()
        self.allowed = self.waiting = self.steps = 0
        self.released = False

    def wait(self, seconds):
        with self.cond:
            self.waiting += 1
            self.cond.notify_all()
            assert self.cond.wait_for(lambda: self.allowed or self.released, timeout=30)
            self.allowed = max(0, self.allowed - 1)

    def step(self, held):
        """Let one renewal run; return once the thread waits again or has ended."""
        with self.cond:
            assert self.cond.wait_for(lambda: self.waiting > self.steps, timeout=30)
            self.steps += 1
            self.allowed += 1
            self.cond.notify_all()
        with self.cond:
            while self.waiting <= self.steps and held._thread.is_alive():
                self.cond.wait(timeout=0.01)  # the thread may end without notifying

    def set(self):
        with self.cond:
            self.released = True
            self.cond.notify_all()


def test_hold_renews_in_the_background_and_releases(host_a, host_b, folder, clock):
    waiter = SteppedWaiter()
    with host_a.hold("v", waiter=waiter) as held:
        first_expiry = held.lease.expires
        clock.advance(minutes=5)
        waiter.step(held)
        assert held.lease.expires == first_expiry + timedelta(minutes=5)
        assert host_a.holder("v").expires == held.lease.expires
        clock.advance(minutes=9)
        with pytest.raises(LeaseHeld):
            host_b.take("v")
        assert held.check().expires == clock() + timedelta(minutes=10)
    assert not (folder.root / "v").exists()


def test_check_raises_when_the_lease_was_lost(host_a, host_b, clock):
    waiter = SteppedWaiter()
    with pytest.raises(LeaseLost), host_a.hold("v", waiter=waiter) as held:
        clock.advance(minutes=11)  # the renewals did not come in time
        taken = host_b.take("v")
        waiter.step(held)              # the thread's renewal finds the lease lost
        assert held.error is not None
        held.check()
    assert host_b.holder("v") == taken  # host-a's exit did not release host-b's lease


class FailingFolder(LocalLeaseFolder):
    """A lease folder whose operations fail while the test says so: ``failures`` maps
    make, write or move to what it raises (a raw OSError, a datastore's VSphereError)."""

    def __init__(self, root, **failures):
        super().__init__(root)
        self.failures = failures

    def _fail(self, operation):
        if operation in self.failures:
            raise self.failures[operation]

    def make(self, name):
        self._fail("make")
        return super().make(name)

    def write(self, name, data):
        self._fail("write")
        super().write(name, data)

    def move(self, name, new_name):
        self._fail("move")
        return super().move(name, new_name)


def test_a_vcenter_failure_while_renewing_is_a_lost_lease(tmp_path, clock):
    folder = FailingFolder(tmp_path / "store")
    leases = Leases(folder, "host-a (plugin pid 10)", clock)
    waiter = SteppedWaiter()
    with pytest.raises(LeaseLost, match=r"cannot renew the backup lease of volume 'v': vCenter is unreachable"), \
            leases.hold("v", waiter=waiter) as held:
        folder.failures["write"] = VSphereUnavailable("vCenter is unreachable")
        waiter.step(held)              # the renewal fails: the thread records it and ends
        assert not held._thread.is_alive()
        assert isinstance(held.error, LeaseLost)
        folder.failures.clear()
        held.check()
    assert leases.holder("v") is None    # released at the end all the same


def test_bad_volume_names_are_refused(host_a):
    with pytest.raises(InvalidName, match="includes invalid characters"):
        host_a.take("../../etc")


def test_a_restarted_plugin_breaks_only_the_leases_its_host_left(tmp_path, clock):
    from plugin.backup.lease import Leases, LocalLeaseFolder

    folder = LocalLeaseFolder(tmp_path)
    before = Leases(folder, "host a, plugin pid 1", clock, host="a")
    other = Leases(folder, "host b, plugin pid 7", clock, host="b")
    before.take("mine")
    other.take("theirs")
    after = Leases(folder, "host a, plugin pid 1", clock, host="a")   # same host, new process
    assert after.break_left_by_this_host() == ["mine"]
    assert after.take("mine").owner == "host a, plugin pid 1"
    assert after.holder("theirs").owner == "host b, plugin pid 7"


# --- storage failures: a lease is never left half-taken ---------------------------------

def test_a_full_store_refuses_the_lease_with_a_message_and_leaves_no_folder(tmp_path, clock):
    with small_tmpfs(tmp_path / "full") as root:
        folder = LocalLeaseFolder(root)
        leases = Leases(folder, "host-a (plugin pid 10)", clock)
        filler = fill(root)
        with pytest.raises(BackupStorageError, match=r"cannot write the backup lease .*/v/owner.json: "
                                                     r"No space left on device; the backup store is full"):
            leases.take("v")
        assert folder.names() == []                  # neither the folder nor one moved aside
        filler.unlink()                              # space freed: the next backup may go at once
        assert leases.take("v").owner == "host-a (plugin pid 10)"


@pytest.mark.parametrize("failure, says", [
    (OSError(errno.ENOSPC, "No space left on device"),
     r"cannot take the backup lease of volume 'v': No space left on device; the backup store is full"),
    (OSError(errno.EIO, "Input/output error"), r"cannot take the backup lease of volume 'v': Input/output error$"),
    (NoDiskSpace("uploading [ds] x/backups/.leases/v/owner.json: the datastore is full"), "the datastore is full"),
])
def test_a_failed_owner_write_removes_the_half_taken_lease(tmp_path, clock, failure, says):
    folder = FailingFolder(tmp_path / "store", write=failure)
    leases = Leases(folder, "host-a", clock)
    with pytest.raises(VolumeError, match=says):
        leases.take("v")
    assert folder.names() == []
    folder.failures.clear()
    assert leases.take("v").owner == "host-a"


def test_a_failed_lease_folder_is_a_typed_error(tmp_path, clock):
    leases = Leases(FailingFolder(tmp_path / "store", make=OSError(errno.EROFS, "Read-only file system")),
                    "host-a", clock)
    with pytest.raises(BackupStorageError, match="Read-only file system; the backup store is mounted read-only"):
        leases.take("v")


def test_a_failed_release_never_hides_the_work_and_is_logged(tmp_path, clock, caplog):
    folder = FailingFolder(tmp_path / "store")
    leases = Leases(folder, "host-a", clock)
    with leases.hold("v", waiter=SteppedWaiter()):
        folder.failures["move"] = OSError(errno.EIO, "Input/output error")
    assert "could not release the backup lease of volume v" in caplog.text
    folder.failures.clear()
    clock.advance(minutes=11)
    assert leases.take("v").owner == "host-a"          # it expired on its own


def test_leases_within_a_subfolder_are_apart_from_the_backup_leases(host_a, host_b, folder):
    backing_up = host_a.take("pgdata")
    copying = host_a.within(".copies-offsite").take("pgdata", "making its scheduled copy to backup target offsite")
    assert (folder.root / ".copies-offsite" / "pgdata" / "owner.json").is_file()
    with pytest.raises(LeaseHeld, match="host-a .* is making its scheduled copy to backup target offsite"):
        host_b.within(".copies-offsite").take("pgdata")
    assert host_a.break_left_by_this_host() == []          # the backup leases' listing passes over it
    assert host_a.release(backing_up) and host_a.within(".copies-offsite").release(copying)
    assert host_b.within(".copies-offsite").take("pgdata").owner.startswith("host-b")


@pytest.mark.parametrize("name", ["copies", ".a/b", ""])
def test_a_lease_subfolder_is_a_dot_name_one_folder_deep(folder, name):
    with pytest.raises(ValueError, match="is no lease subfolder"):
        folder.within(name)

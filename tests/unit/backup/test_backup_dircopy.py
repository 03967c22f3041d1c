import os
import stat
from types import SimpleNamespace

import pytest

from plugin.backup.dircopy import DirectoryCopier, same_tree
from plugin.errors import BackupError

T1 = 1_600_000_000_123_456_789  # ns
T2 = 1_650_000_000_987_654_321


def set_times(path, ns):
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


@pytest.fixture
def volume(tmp_path):
    """A volume folder with what a backup must keep: owners, modes, ns times, links, empty dirs."""
    root = tmp_path / "volume"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_bytes(b"alpha" * 1000)
    (root / "sub" / "b.bin").write_bytes(os.urandom(4096))
    (root / "sub" / "deep" / "c").write_bytes(b"")
    os.link(root / "a.txt", root / "sub" / "a-link")
    os.symlink("sub/b.bin", root / "to-b")
    os.symlink("/nowhere", root / "dangling")
    os.mkfifo(root / "fifo")
    os.chown(root / "a.txt", 1234, 5678)
    os.chown(root / "to-b", 4321, 8765, follow_symlinks=False)
    os.chmod(root / "a.txt", 0o640)
    os.chmod(root / "sub" / "b.bin", 0o4755)  # noqa: S103 - a setuid bit the copy must keep
    os.chmod(root / "empty", 0o700)
    for path in [root / "to-b", root / "dangling", *sorted(root.rglob("*"), reverse=True), root]:
        set_times(path, T1)
    return root


def snapshot(root):
    """Everything a restore must give back, by relative path (inodes left out)."""
    found = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = os.lstat(path)
        entry = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns)
        if stat.S_ISREG(st.st_mode):
            entry += (path.read_bytes(),)
        elif stat.S_ISLNK(st.st_mode):
            entry += (os.readlink(path),)
        found[str(path.relative_to(root))] = entry
    return found


def staged(tmp_path, name):
    """The data folder of a new backup: its backup folder exists, it does not."""
    (tmp_path / name).mkdir()
    return tmp_path / name / "data"


def inode(path):
    return os.lstat(path).st_ino


@pytest.fixture
def copier():
    return DirectoryCopier()


def test_first_backup_is_a_faithful_copy(volume, tmp_path, copier):
    dest = staged(tmp_path, "b1")
    result = copier.backup(volume, dest)
    assert snapshot(dest) == snapshot(volume)
    assert inode(dest / "a.txt") == inode(dest / "sub" / "a-link")  # hard link inside the volume kept
    assert inode(dest / "a.txt") != inode(volume / "a.txt")
    assert (result.changed, result.files, result.linked) == (True, 4, 0)
    assert result.size == 5000 + 4096 + 0 + 5000
    assert result.added == 5000 + 4096 + 0        # a.txt and its hard link sub/a-link: copied once


def test_unchanged_volume_is_reported_and_not_copied(volume, tmp_path, copier):
    first = staged(tmp_path, "b1")
    copier.backup(volume, first)
    second = staged(tmp_path, "b2")
    result = copier.backup(volume, second, previous=first)
    assert (result.changed, result.files, result.size) == (False, 4, 14096)
    assert not second.exists()


def test_changed_volume_links_unchanged_files_to_the_previous_backup(volume, tmp_path, copier):
    first = staged(tmp_path, "b1")
    copier.backup(volume, first)
    (volume / "sub" / "b.bin").write_bytes(b"new content")
    (volume / "new").write_bytes(b"n")
    os.remove(volume / "sub" / "deep" / "c")
    os.chown(volume / "sub" / "a-link", 1, 1)  # owner change only (a.txt is the same inode)
    second = staged(tmp_path, "b2")
    result = copier.backup(volume, second, previous=first)
    assert result.changed and snapshot(second) == snapshot(volume)
    assert inode(second / "sub" / "b.bin") != inode(first / "sub" / "b.bin")
    assert inode(second / "a.txt") != inode(first / "a.txt")  # its owner changed: copied
    assert (second / "sub" / "b.bin").read_bytes() == b"new content"
    assert (first / "sub" / "b.bin").read_bytes() != b"new content"  # the old backup is untouched
    assert not (second / "sub" / "deep" / "c").exists()
    os.chown(volume / "a.txt", 1234, 5678)
    third = staged(tmp_path, "b3")
    result = copier.backup(volume, third, previous=second)
    assert inode(third / "sub" / "b.bin") == inode(second / "sub" / "b.bin")
    assert inode(third / "new") == inode(second / "new")
    assert inode(third / "a.txt") != inode(second / "a.txt")
    assert (result.files, result.linked) == (4, 2)
    assert result.added == 5000                   # a.txt (and its link) copied; b.bin and new linked
    assert os.lstat(third / "sub" / "b.bin").st_nlink == 2


def test_a_mode_or_time_change_counts_as_a_change(volume, tmp_path, copier):
    first = staged(tmp_path, "b1")
    copier.backup(volume, first)
    os.chmod(volume / "a.txt", 0o600)
    assert same_tree(volume, first) is None
    os.chmod(volume / "a.txt", 0o640)
    assert same_tree(volume, first) is not None
    set_times(volume / "sub" / "deep", T2)
    assert same_tree(volume, first) is None


def test_restore_into_an_empty_folder_copies_and_never_links(volume, tmp_path, copier):
    backup = staged(tmp_path, "b1")
    copier.backup(volume, backup)
    target = tmp_path / "restored"
    target.mkdir()
    result = copier.restore(backup, target)
    assert snapshot(target) == snapshot(volume)
    assert inode(target / "a.txt") == inode(target / "sub" / "a-link")
    assert inode(target / "a.txt") != inode(backup / "a.txt")
    assert (result.files, result.size) == (4, 14096)


def test_restore_refuses_a_folder_with_content_unless_forced(volume, tmp_path, copier):
    backup = staged(tmp_path, "b1")
    copier.backup(volume, backup)
    target = tmp_path / "live"
    target.mkdir()
    (target / "keep-me").write_bytes(b"precious")
    with pytest.raises(BackupError, match=r"not empty \(1 entries: 'keep-me'\).*force"):
        copier.restore(backup, target)
    assert (target / "keep-me").read_bytes() == b"precious"
    copier.restore(backup, target, force=True)
    assert snapshot(target) == snapshot(volume)


def test_missing_or_existing_folders_are_refused(volume, tmp_path, copier):
    with pytest.raises(BackupError, match="is not a folder"):
        copier.backup(tmp_path / "nope", tmp_path / "d")
    with pytest.raises(BackupError, match="exists already"):
        copier.backup(volume, volume)
    with pytest.raises(BackupError, match="is not an existing folder"):
        copier.restore(volume, tmp_path / "nope")
    with pytest.raises(BackupError, match="backup data .* is missing"):
        copier.restore(tmp_path / "nope", volume)


def fake_runner(returncode, stderr="", calls=None):
    def run(argv):
        if calls is not None:
            calls.append(argv)
        return SimpleNamespace(returncode=returncode, stderr=stderr)
    return run


def test_rsync_is_called_with_link_dest_and_failures_are_reported(volume, tmp_path):
    calls = []
    previous = staged(tmp_path, "b1")
    previous.mkdir(parents=True)
    copier = DirectoryCopier(runner=fake_runner(23, "rsync: open \"x\" failed: Permission denied (13)\n", calls))
    with pytest.raises(BackupError, match=r"rsync exited with 23: rsync: open \"x\" failed: Permission denied"):
        copier.backup(volume, tmp_path / "b2" / "data", previous=previous)
    assert calls == [["rsync", "-aH", "--numeric-ids", "--modify-window=-1", f"--link-dest={previous}",
                      f"{volume}/", f"{tmp_path / 'b2' / 'data'}/"]]


def test_vanished_files_are_normal_for_a_live_volume(volume, tmp_path):
    copier = DirectoryCopier(runner=fake_runner(24, "file has vanished: \"/v/tmp.123\""))
    dest = tmp_path / "d"
    dest.mkdir()
    assert copier.restore(volume, dest).files == 0  # the fake copied nothing; no error


def test_missing_rsync_says_so(volume, tmp_path):
    copier = DirectoryCopier(rsync="/nonexistent/rsync")
    with pytest.raises(BackupError, match="needs rsync, which is not installed"):
        copier.backup(volume, tmp_path / "d")


def test_a_rewrite_within_the_same_second_is_seen(volume, tmp_path, copier):
    first = staged(tmp_path, "b1")
    copier.backup(volume, first)
    (volume / "sub" / "b.bin").write_bytes(b"x" * 4096)  # same size
    set_times(volume / "sub" / "b.bin", T1 + 500)         # same second, 500 ns later
    set_times(volume / "sub", T1)
    second = staged(tmp_path, "b2")
    assert copier.backup(volume, second, previous=first).changed
    assert (second / "sub" / "b.bin").read_bytes() == b"x" * 4096
    assert inode(second / "sub" / "b.bin") != inode(first / "sub" / "b.bin")
    assert os.lstat(second / "sub" / "b.bin").st_mtime_ns == T1 + 500

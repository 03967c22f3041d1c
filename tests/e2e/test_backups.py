"""Backups and restores as a user makes them: docker CLI, compose and vsphere-volume."""

import os
import textwrap
from pathlib import Path

from .dockercli import compose, docker
from .user import backups, inspect, run_on as run, running_on, unique, vv

def test_backup_change_restore_as_new_volume_and_in_place(plugin, volume, test_image):
    name, copy = volume("orders"), volume("orders-copy")
    docker("volume", "create", "-d", plugin.name, "--opt", "Backup=daily", "--opt", "BackupKeep=5", name)
    run(test_image, name, "echo 'order 1' > /data/orders; mkdir /data/img; "
                          "head -c 100000 /dev/urandom > /data/img/blob; cd /data && sha256sum img/blob > sums")
    code, out, _ = vv(plugin, "backup", name)
    assert f"of {name} committed (directory" in out
    [first] = backups(plugin, name)
    assert first["Origin"] == "manual"

    run(test_image, name, "echo 'order 2' > /data/orders; rm -r /data/img")
    docker("volume", "create", "-d", plugin.name, "--opt", f"RestoreFrom={name}@latest", copy)
    assert run(test_image, copy, "cat /data/orders; cd /data && sha256sum -c sums") == \
        "order 1\nimg/blob: OK\n"
    assert run(test_image, name, "cat /data/orders; ls /data") == "order 2\norders\nsums\n"

    with running_on(test_image, name, "true", "user"):
        code, _, err = vv(plugin, "restore", name, "--force", check=False)
        assert code == 1 and f"volume {name} is mounted 1 time(s)" in err
    code, _, err = vv(plugin, "restore", name, check=False)
    assert code == 1 and "add --force" in err
    _, out, _ = vv(plugin, "restore", name, "--backup", first["Id"], "--force")
    assert "its previous data is in backup" in out
    assert run(test_image, name, "cat /data/orders; cd /data && sha256sum -c sums") == "order 1\nimg/blob: OK\n"
    safety = [b for b in backups(plugin, name) if b["Origin"] == "pre-restore"]
    assert len(safety) == 1
    # The safety backup holds what was there before the restore.
    restored_safety = volume("safety")
    docker("volume", "create", "-d", plugin.name, "--opt", f"RestoreFrom={name}@{safety[0]['Id']}",
           restored_safety)
    assert run(test_image, restored_safety, "cat /data/orders") == "order 2\n"


def test_inspect_shows_backup_status(plugin, volume, test_image):
    name = volume("status")
    docker("volume", "create", "-d", plugin.name, "--opt", "Backup=daily@03:30", name)
    vv(plugin, "backup", name)
    status = inspect(name)["Status"]["Backup"]
    assert status["Policy"] == "daily@03:30" and status["NextRun"].endswith("T03:30:00Z")
    assert status["Backups"] == 1 and status["LastBackup"]["Result"] == "ok" and status["LastError"] == ""


def test_remove_with_policy_leaves_a_restorable_final_backup(plugin, volume, test_image):
    name, back = volume("leaving"), volume("back")
    docker("volume", "create", "-d", plugin.name, "--opt", "Backup=weekly", name)
    run(test_image, name, "echo 'keep me' > /data/f")
    docker("volume", "rm", name)
    assert name not in docker("volume", "ls", "-q").stdout.split()
    [final] = backups(plugin, name)
    assert final["Origin"] == "final"
    docker("volume", "create", "-d", plugin.name, "--opt", f"RestoreFrom={name}@{final['Id']}", back)
    assert run(test_image, back, "cat /data/f") == "keep me\n"


def test_compose_restores_from_a_backup(plugin, volume, test_image, tmp_path):
    source = volume("src")
    docker("volume", "create", "-d", plugin.name, source)
    run(test_image, source, "echo 'from the backup' > /data/f")
    vv(plugin, "backup", source)
    project = unique("restore")
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(f"""
        services:
          app:
            image: {test_image}
            network_mode: none
            command: ["cat", "/data/f"]
            volumes: ["restored:/data"]
        volumes:
          restored:
            driver: {plugin.name}
            driver_opts:
              RestoreFrom: "{source}@latest"
        """))
    try:
        up = compose(tmp_path, "-p", project, "up", "--abort-on-container-exit")
        assert "from the backup" in up.stdout
    finally:
        compose(tmp_path, "-p", project, "down", "--volumes", check=False)


def test_restore_from_a_missing_backup_creates_nothing(plugin):
    name = unique("nothing")
    result = docker("volume", "create", "-d", plugin.name, "--opt", "RestoreFrom=never-existed@latest", name,
                    check=False)
    assert result.returncode != 0 and "volume never-existed has no backups" in result.stderr
    assert name not in docker("volume", "ls", "-q").stdout.split()
    assert not os.path.exists(os.path.join(plugin.state_dir, "default", "volumes", name))


def test_a_cron_that_never_fires_is_refused_and_creates_nothing(plugin):
    name = unique("never")
    result = docker("volume", "create", "-d", plugin.name, "--opt", "Backup=0 0 31 2 *", name, check=False)
    assert result.returncode != 0
    assert "Backup='0 0 31 2 *' never fires: no date matches this cron expression" in result.stderr
    assert "internal error" not in result.stderr
    assert name not in docker("volume", "ls", "-q").stdout.split()
    assert not os.path.exists(os.path.join(plugin.state_dir, "default", "volumes", name))
    assert not os.path.exists(os.path.join(plugin.state_dir, "default", "volumes_metadata", name))


def test_a_damaged_backup_is_shown_deletable_and_a_restore_names_the_backup_it_used(plugin, volume, test_image):
    name, copy, other = volume("ledger"), volume("ledger-copy"), volume("ledger-other")
    docker("volume", "create", "-d", plugin.name, "--opt", "Backup=daily", name)
    run(test_image, name, "echo 'entry 1' > /data/ledger")
    vv(plugin, "backup", name)
    run(test_image, name, "echo 'entry 2' > /data/ledger")
    vv(plugin, "backup", name)
    first, second = [b["Id"] for b in backups(plugin, name)]
    damaged = Path(plugin.state_dir, "default", "backups", name, second)
    (damaged / "manifest.json").write_text("{ not json")    # a disk error, a bad hand edit

    _, out, _ = vv(plugin, "backups", name)
    assert [line.split()[-1] for line in out.splitlines()[1:3]] == ["ok", "damaged"]
    assert f"backup {second} is damaged and cannot be restored: " in out and "is not valid JSON" in out
    assert [(b["Id"], b["State"]) for b in backups(plugin, name)] == [(first, "ok"), (second, "damaged")]

    _, out, _ = vv(plugin, "restore", name, "--as", copy)
    assert out.startswith(f"volume {copy} restored from backup {first} of {name} "
                          f"(latest usable backup {first}; {second} is damaged: ")
    assert run(test_image, copy, "cat /data/ledger") == "entry 1\n"
    docker("volume", "create", "-d", plugin.name, "--opt", f"RestoreFrom={name}@latest", other)
    restored = inspect(other)["Status"]["Backup"]["RestoredFrom"]
    assert restored["Backup"] == first and restored["Why"].startswith(f"latest usable backup {first}; {second}")
    code, _, err = vv(plugin, "restore", name, "--backup", second, "--as", volume("never"), check=False)
    assert code == 1 and f"backup {second} of volume {name} is damaged: " in err

    _, out, _ = vv(plugin, "delete", name, second)
    assert out == f"deleted backup {second} of {name}\n"
    assert not damaged.exists()
    assert [(b["Id"], b["State"]) for b in backups(plugin, name)] == [(first, "ok")]

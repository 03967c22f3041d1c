"""BACKUP_TARGETS and the per-target settings."""

import pytest

from plugin.errors import InvalidRequest
from plugin.offsite.restic import RepositoryConfig
from plugin.offsite.targetspec import FILE, LOCAL, S3, parse_targets, settings_key, targets_from_env

S3_SPEC = "s3:https://objects.example.com:9000/backups/site-a/vols:offsite"
S3_ENV = {"BACKUP_TARGET_OFFSITE_PASSWORD_FILE": "/var/lib/vsphere-volume/keys/offsite",
          "BACKUP_TARGET_OFFSITE_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
          "BACKUP_TARGET_OFFSITE_S3_SECRET_ACCESS_KEY_FILE": "/var/lib/vsphere-volume/keys/s3"}


def only(targets):
    assert not targets.unavailable and not targets.problems, (targets.unavailable, targets.problems)
    return targets.available


def reason(text, env=None):
    targets = parse_targets(text, env or {})
    [unavailable] = targets.unavailable
    return unavailable.reason


def test_an_s3_target_with_every_setting():
    env = {**S3_ENV, "BACKUP_TARGET_OFFSITE_S3_REGION": "eu-west-1",
           "BACKUP_TARGET_OFFSITE_CA_FILE": "/var/lib/vsphere-volume/ca.pem",
           "BACKUP_TARGET_OFFSITE_LIMIT_UPLOAD": "2048", "BACKUP_TARGET_OFFSITE_LIMIT_DOWNLOAD": "0",
           "BACKUP_TARGET_OFFSITE_VERIFY": "daily@03:30", "BACKUP_TARGET_OFFSITE_VERIFY_READ": "1/7"}

    [target] = only(parse_targets(S3_SPEC, env))

    assert (target.label, target.kind, target.spec) == ("offsite", S3, S3_SPEC)
    assert target.location == "s3:https://objects.example.com:9000/backups/site-a/vols"
    assert (target.repository.limit_upload, target.repository.limit_download) == (2048, 0)
    assert (target.verify.text, target.verify_read) == ("daily@03:30", "1/7")
    config = target.repository_config()
    assert isinstance(config, RepositoryConfig)
    assert config.password_file == "/var/lib/vsphere-volume/keys/offsite"
    assert config.s3_secret_access_key_file == "/var/lib/vsphere-volume/keys/s3"
    assert (config.s3_region, config.ca_file, config.insecure_tls) == (
        "eu-west-1", "/var/lib/vsphere-volume/ca.pem", False)
    assert "offsite" in config.name and target.location in config.name


def test_several_targets_the_label_after_the_last_colon_and_defaults():
    env = {**S3_ENV, "BACKUP_TARGET_NAS_1_PASSWORD": "pw-of-the-nas",
           "BACKUP_TARGET_PLAIN_PASSWORD_FILE": "/k/plain",
           "BACKUP_TARGET_PLAIN_S3_ACCESS_KEY_ID": "key", "BACKUP_TARGET_PLAIN_S3_SECRET_ACCESS_KEY": "s"}
    text = f"{S3_SPEC}; file:///mnt/nas/restic:nas-1 ;local:here;s3:http://10.0.0.5:9000/bkt:plain"

    s3, nas, local, plain = only(parse_targets(text, env))

    assert (nas.kind, nas.location, nas.repository.password) == (FILE, "/mnt/nas/restic", "pw-of-the-nas")
    assert (local.kind, local.label, local.location) == (LOCAL, "here", "")
    assert plain.location == "s3:http://10.0.0.5:9000/bkt"
    assert (s3.verify.text, s3.verify_read, s3.repository.insecure_tls) == ("weekly", "5%", False)
    with pytest.raises(InvalidRequest, match="is the local tier"):
        local.repository_config()


def test_empty_means_the_local_tier_and_the_embedded_target():
    local, embedded = only(parse_targets("", {}, data_dir="/data"))
    assert (local.kind, local.label) == (LOCAL, "local")
    assert (embedded.kind, embedded.label, embedded.location) == (FILE, "offsite", "/data/offsite")
    assert embedded.repository.password_file == "/data/state/offsite-target.key"
    assert embedded.generate_password


def test_the_embedded_target_takes_a_password_setting_instead():
    _, embedded = only(parse_targets("", {"BACKUP_TARGET_OFFSITE_PASSWORD": "mine"}, data_dir="/d"))
    assert embedded.repository.password == "mine" and not embedded.generate_password


def test_tls_opt_out_is_explicit_and_never_with_a_ca_file():
    [target] = only(parse_targets(S3_SPEC, {**S3_ENV, "BACKUP_TARGET_OFFSITE_TLS_VERIFY": "0"}))
    assert target.repository_config().insecure_tls
    assert "contradict" in reason(S3_SPEC, {**S3_ENV, "BACKUP_TARGET_OFFSITE_TLS_VERIFY": "0",
                                            "BACKUP_TARGET_OFFSITE_CA_FILE": "/ca.pem"})


@pytest.mark.parametrize("spec, expected", [
    ("s3:https://host:9000/backups", "has no label"),
    ("offsite", "has no label"),
    ("s3:ftp://host/bucket:x", "(http or https)"),
    ("s3:https://user:pw@host/bucket:x", "credentials do not belong in the URL"),
    ("s3:https://host:99999/bucket:x", "invalid port"),
    ("s3:https://host:9000:x", "names no bucket"),
    ("s3:https://host/BadBucket:x", "is not a valid S3 bucket name"),
    ("s3:https://host/ab:x", "is not a valid S3 bucket name"),
    ("s3:https://host/bucket/../other:x", "may not contain '.' or '..'"),
    ("s3:https://host/bucket?versioning=1:x", "nothing may follow the path"),
    ("file://host/path:x", "needs an absolute folder"),
    ("file:///a/../b:x", "may not contain '.' or '..'"),
    ("nfs://host/path:x", "unsupported scheme"),
    ("file:///a:bad label", "is not valid: use 1 to 64 letters"),
])
def test_a_bad_spec_makes_that_target_unavailable_and_keeps_the_others(spec, expected):
    env = {"BACKUP_TARGET_GOOD_PASSWORD": "p", "BACKUP_TARGET_X_PASSWORD": "p"}
    targets = parse_targets(f"file:///srv/good:good;{spec}", env)

    assert [t.label for t in targets.available] == ["good"]
    [unavailable] = targets.unavailable
    assert expected in unavailable.reason


@pytest.mark.parametrize("env, expected", [
    ({}, "needs a repository password: set BACKUP_TARGET_OFFSITE_PASSWORD_FILE"),
    ({"BACKUP_TARGET_OFFSITE_PASSWORD": "a", "BACKUP_TARGET_OFFSITE_PASSWORD_FILE": "/f"}, "not both"),
    ({"BACKUP_TARGET_OFFSITE_PASSWORD_FILE": "relative"}, "is not an absolute path"),
    ({"BACKUP_TARGET_OFFSITE_PASSWORD": "a", "BACKUP_TARGET_OFFSITE_LIMIT_UPLOAD": "10M"},
     "use a whole number of KiB/s"),
    ({"BACKUP_TARGET_OFFSITE_PASSWORD": "a", "BACKUP_TARGET_OFFSITE_VERIFY": "sometimes"},
     "is not a valid schedule"),
    ({"BACKUP_TARGET_OFFSITE_PASSWORD": "a", "BACKUP_TARGET_OFFSITE_VERIFY": "on-unmount"},
     "on-unmount is a volume event"),
    ({"BACKUP_TARGET_OFFSITE_PASSWORD": "a", "BACKUP_TARGET_OFFSITE_VERIFY_READ": "200%"},
     "read_data_subset='200%' is not valid"),
    ({"BACKUP_TARGET_OFFSITE_PASSWORD": "a", "BACKUP_TARGET_OFFSITE_PASWORD_FILE": "/f"},
     ("BACKUP_TARGET_OFFSITE_PASWORD_FILE not accepted here; accepted: "
     "BACKUP_TARGET_OFFSITE_PASSWORD_FILE")),
    ({"BACKUP_TARGET_OFFSITE_PASSWORD": "a", "BACKUP_TARGET_OFFSITE_S3_ACCESS_KEY_ID": "k"},
     "BACKUP_TARGET_OFFSITE_S3_ACCESS_KEY_ID not accepted here"),
])
def test_settings_of_a_folder_target_are_checked(env, expected):
    assert expected in reason("file:///srv/restic:offsite", env)


@pytest.mark.parametrize("drop, add, expected", [
    ("BACKUP_TARGET_OFFSITE_S3_ACCESS_KEY_ID", {}, "needs BACKUP_TARGET_OFFSITE_S3_ACCESS_KEY_ID"),
    ("BACKUP_TARGET_OFFSITE_S3_SECRET_ACCESS_KEY_FILE", {}, "needs an S3 secret access key"),
    (None, {"BACKUP_TARGET_OFFSITE_TLS_VERIFY": "maybe"}, "TLS_VERIFY='maybe' is not valid"),
])
def test_settings_of_an_s3_target_are_checked(drop, add, expected):
    env = {k: v for k, v in S3_ENV.items() if k != drop}
    assert expected in reason(S3_SPEC, {**env, **add})


def test_tls_settings_on_plain_http_are_refused():
    env = {k.replace("OFFSITE", "LAN"): v for k, v in S3_ENV.items()}
    assert "apply to https:// targets only" in reason(
        "s3:http://10.0.0.5:9000/bkt:lan", {**env, "BACKUP_TARGET_LAN_CA_FILE": "/ca.pem"})


def test_the_local_tier_takes_no_settings():
    assert "none (the local tier has no settings)" in reason(
        "local:local", {"BACKUP_TARGET_LOCAL_PASSWORD": "x"})


def test_labels_whose_settings_would_collide_and_settings_of_no_target():
    env = {"BACKUP_TARGET_A_B_PASSWORD": "p", "BACKUP_TARGET_GHOST_PASSWORD": "p"}
    targets = parse_targets("file:///x:a-b;file:///y:a.b;file:///z:A-B", env)

    assert [t.label for t in targets.available] == ["a-b"]
    assert ["a.b", "A-B"] == [u.label for u in targets.unavailable]
    assert all("rename one" in u.reason for u in targets.unavailable)
    assert targets.problems == (("setting BACKUP_TARGET_GHOST_PASSWORD belongs to no target "
                                "declared in BACKUP_TARGETS"),)


def test_settings_go_to_the_longest_matching_label():
    env = {"BACKUP_TARGET_OFF_PASSWORD": "p1", "BACKUP_TARGET_OFF_SITE_PASSWORD": "p2"}
    off, off_site = only(parse_targets("file:///a:off;file:///b:off-site", env))
    assert (off.repository.password, off_site.repository.password) == ("p1", "p2")
    assert settings_key("off-site.1") == "BACKUP_TARGET_OFF_SITE_1_"


def test_public_shows_where_secrets_come_from_never_the_secrets():
    env = {**S3_ENV, "BACKUP_TARGET_OFFSITE_S3_SECRET_ACCESS_KEY_FILE": "",
           "BACKUP_TARGET_OFFSITE_S3_SECRET_ACCESS_KEY": "the-s3-secret-value",
           "BACKUP_TARGET_OFFSITE_PASSWORD_FILE": "", "BACKUP_TARGET_OFFSITE_PASSWORD": "the-password"}
    [target] = only(parse_targets(S3_SPEC, env))

    shown = repr(target.public()) + repr(target)

    assert "the-s3-secret-value" not in shown and "the-password" not in shown
    assert target.public()["password"] == "setting"
    assert target.public()["tls"] == "verified against the system CA store"


def test_empty_settings_are_not_given():
    # config.json declares the settings of the label "offsite": unset, they are empty.
    env = {"BACKUP_TARGET_OFFSITE_PASSWORD": "", "BACKUP_TARGET_OFFSITE_S3_ACCESS_KEY_ID": " ",
           "BACKUP_TARGET_NAS_PASSWORD_FILE": "/k/nas"}
    [nas] = only(parse_targets("file:///mnt/nas:nas", env))
    assert nas.repository.password_file == "/k/nas"


def test_verify_restore_is_a_boolean_setting():
    [plain] = only(parse_targets("file:///mnt/nas:nas", {"BACKUP_TARGET_NAS_PASSWORD": "p"}))
    [restoring] = only(parse_targets("file:///mnt/nas:nas", {"BACKUP_TARGET_NAS_PASSWORD": "p",
                                                             "BACKUP_TARGET_NAS_VERIFY_RESTORE": "1"}))
    assert (plain.verify_restore, restoring.verify_restore) == (False, True)
    assert restoring.public()["verify_restore"] is True
    assert "VERIFY_RESTORE='maybe' is not valid: use 1" in reason(
        "file:///mnt/nas:nas", {"BACKUP_TARGET_NAS_PASSWORD": "p", "BACKUP_TARGET_NAS_VERIFY_RESTORE": "maybe"})


def test_the_settings_file_holds_the_settings_of_other_labels(tmp_path):
    settings = tmp_path / "targets.env"
    settings.write_text("# the vault, off site\n\nBACKUP_TARGET_VAULT_PASSWORD = a secret \n"
                        "BACKUP_TARGET_VAULT_VERIFY=daily\nnot a setting\nBACKUP_TARGET_VAULT_VERIFY=weekly\n"
                        "BACKUP_TARGET_NAS_PASSWORD=from-the-file\n")
    env = {"BACKUP_TARGETS": "file:///srv/vault:vault;file:///mnt/nas:nas",
           "BACKUP_TARGET_SETTINGS_FILE": str(settings), "BACKUP_TARGET_NAS_PASSWORD": "from-the-setting"}

    targets = targets_from_env(env)

    vault, nas = targets.available
    assert (vault.repository.password, vault.verify.text) == ("a secret", "daily")
    assert nas.repository.password == "from-the-setting"
    problems = "\n".join(targets.problems)
    assert "line 5: not a BACKUP_TARGET_<LABEL>_<NAME>=VALUE line" in problems
    assert "line 6: BACKUP_TARGET_VAULT_VERIFY is given twice" in problems
    assert "BACKUP_TARGET_NAS_PASSWORD is given both as a plugin setting and in BACKUP_TARGET_SETTINGS_FILE" in problems
    assert "a secret" not in problems and "from-the-file" not in problems


def test_a_settings_file_that_cannot_be_read_is_a_problem_not_a_failure(tmp_path):
    targets = targets_from_env({"BACKUP_TARGETS": "local:local",
                                "BACKUP_TARGET_SETTINGS_FILE": str(tmp_path / "missing.env")})
    assert [t.label for t in targets.available] == ["local"]
    [problem] = targets.problems
    assert "missing.env" in problem and "cannot be read: No such file or directory" in problem

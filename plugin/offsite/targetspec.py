"""Backup target declarations: the ``BACKUP_TARGETS`` setting and per-target settings.

``BACKUP_TARGETS`` lists targets separated by ``;``, each ``spec:label`` as in
``VOLUME_STORES`` (the label is everything after the LAST ``:``; schemes and ports have
colons of their own):

- ``s3:https://host:port/bucket/prefix:label`` (or ``s3:http://...``): a restic
  repository on S3-compatible object storage, at ``prefix`` (optional) of ``bucket``.
  Credentials never in the URL.
- ``file:///abs/path:label``: a restic repository in a folder the plugin sees (a local
  disk, an NFS mount), made there on first use.
- ``local:label``: the tier that exists today, on the volume's ``BackupStore``:
  datastore clones for VMDK volumes, folder copies for folder volumes. Takes no settings.

Empty, it means ``local:local;file://<DATA_DIR>/offsite:offsite``: the local tier, and
the embedded restic target in the plugin's data folder, whose password file defaults to
``<DATA_DIR>/state/offsite-target.key`` (``generate_password``: made, random and 0600,
by the plugin on first use when missing).

Per-target settings, ``BACKUP_TARGET_<KEY>_<NAME>``, where ``<KEY>`` is the label in
upper case with every character other than a letter or digit written ``_``
(``off-site.1`` -> ``OFF_SITE_1``). For restic targets (s3, file):

- ``PASSWORD_FILE`` or ``PASSWORD``: the repository password (exactly one; prefer the file)
- ``S3_ACCESS_KEY_ID``: S3 only, required
- ``S3_SECRET_ACCESS_KEY_FILE`` or ``S3_SECRET_ACCESS_KEY``: S3 only, exactly one
- ``S3_REGION``: S3 only, optional
- ``CA_FILE``: https only: the PEM file of the CA the server's certificate is checked
  against (default: the system's CA store)
- ``TLS_VERIFY``: https only: ``1`` (default) or ``0``, the explicit opt-out (restic's
  ``--insecure-tls``)
- ``LIMIT_UPLOAD``, ``LIMIT_DOWNLOAD``: bandwidth limits in KiB/s, whole numbers (default 0: none)
- ``VERIFY``: when ``restic check`` runs: the ``Backup`` schedule grammar (``off``,
  ``daily``, ``weekly``, ``daily@03:00``, cron); default ``weekly``
- ``VERIFY_READ``: how much data a check reads: ``5%`` (default), ``n/t``, or a size
  such as ``2G``
- ``VERIFY_RESTORE``: ``1`` also restores the newest copy into a scratch folder at each
  verification and compares it with what the copy recorded (its files and bytes);
  default ``0``

A managed plugin takes only the settings its config.json declares, so the settings of
the label ``offsite`` are declared there; those of other labels go in the file that
``BACKUP_TARGET_SETTINGS_FILE`` names (``KEY=VALUE`` lines, ``#`` comments), which is
also the place for secrets given as values (``docker plugin inspect`` shows settings).
A setting given both ways is a problem, and the plugin setting is the one used
(``targets_from_env``). Empty settings count as not given.

Nothing here raises: a spec or setting that is wrong makes THAT target unavailable,
with the reason (``Targets.unavailable``); the others are used. Settings named
``BACKUP_TARGET_...`` that belong to no declared target are reported in
``Targets.problems``. Files are named, not read, here.
"""

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ConfigError, InvalidOption, InvalidRequest, cut, shown
from ..options import TARGET_LABEL_RE
from ..policy.schedule import ON_UNMOUNT, Schedule, parse_schedule
from ..settingvalues import flag
from .restic import RepositoryConfig, check_subset

S3, FILE, LOCAL = "s3", "file", "local"
PREFIX = "BACKUP_TARGET_"
DEFAULT_VERIFY, DEFAULT_VERIFY_READ = "weekly", "5%"
MAX_LIMIT_KIB = 10_000_000      # 10 GB/s: a bound, to refuse typos
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
RESTIC_SETTINGS = ("PASSWORD_FILE", "PASSWORD", "LIMIT_UPLOAD", "LIMIT_DOWNLOAD", "VERIFY",
                   "VERIFY_READ", "VERIFY_RESTORE")
SETTINGS_FILE = "BACKUP_TARGET_SETTINGS_FILE"
S3_SETTINGS = ("S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY_FILE", "S3_SECRET_ACCESS_KEY",
               "S3_REGION", "CA_FILE", "TLS_VERIFY")
FORMS = "s3:https://host:port/bucket/prefix:label, file:///abs/path:label or local:label"


class TargetSpecError(Exception):
    """Why one target cannot be used (internal: becomes an UnavailableTarget)."""


@dataclass(frozen=True)
class TargetSpec:
    """One usable target: for restic ones (s3, file), the repository and its checks."""

    label: str
    kind: str
    spec: str
    repository: RepositoryConfig = None
    generate_password: bool = False
    verify: Schedule = None
    verify_read: str = ""
    verify_restore: bool = False

    @property
    def is_restic(self):
        return self.repository is not None

    @property
    def location(self):
        return self.repository.location if self.repository else ""

    def repository_config(self):
        """The RepositoryConfig for ``plugin.offsite.restic.Restic`` (restic targets)."""
        if not self.is_restic:
            raise InvalidRequest(f"backup target {self.label} is the local tier, not a restic repository")
        return self.repository

    def public(self):
        """What ``status`` may show: no secret, only where secrets come from."""
        shown_ = {"label": self.label, "kind": self.kind, "spec": self.spec}
        repo = self.repository
        if repo:
            shown_.update(location=repo.location, verify=self.verify.text, verify_read=self.verify_read,
                          verify_restore=self.verify_restore,
                          password="file " + repo.password_file if repo.password_file else "setting")
            if repo.limit_upload or repo.limit_download:
                shown_.update(limit_upload_kib=repo.limit_upload, limit_download_kib=repo.limit_download)
        if self.kind == S3:
            shown_.update(s3_access_key_id=repo.s3_access_key_id,
                          tls="not verified (TLS_VERIFY=0)" if repo.insecure_tls
                          else f"verified against {repo.ca_file or 'the system CA store'}")
        return shown_


@dataclass(frozen=True)
class UnavailableTarget:
    label: str
    spec: str
    reason: str


@dataclass(frozen=True)
class Targets:
    """The parsed ``BACKUP_TARGETS``: usable targets, unusable ones with why, and other
    problems (settings for no declared target)."""

    available: tuple = ()
    unavailable: tuple = ()
    problems: tuple = ()

    def get(self, label):
        return next((t for t in self.available if t.label == label), None)

    def reason(self, label):
        return next((u.reason for u in self.unavailable if u.label == label), None)


def settings_key(label):
    """``BACKUP_TARGET_<KEY>_`` for a label."""
    return PREFIX + re.sub(r"[^A-Z0-9]", "_", label.upper()) + "_"


def default_targets(data_dir):
    return f"local:local;file://{os.path.join(data_dir, 'offsite')}:offsite"


def parse_targets(text, env, data_dir="/var/lib/vsphere-volume"):
    """Parse ``BACKUP_TARGETS`` (empty: the defaults) with the settings in ``env``."""
    env = {str(k): str(v) for k, v in (env or {}).items()}
    text = (text or "").strip() or default_targets(data_dir)
    embedded = default_targets(data_dir).split(";")[1]
    declared = [(raw, raw.rpartition(":")[2]) for raw in (p.strip() for p in text.split(";")) if raw]
    keys = sorted({settings_key(label) for _, label in declared}, key=len, reverse=True)
    given = {key: {} for key in keys}
    problems = []
    for name in sorted(env):
        if not name.startswith(PREFIX) or name == SETTINGS_FILE or not env[name].strip():
            continue
        owner = next((key for key in keys if name.startswith(key)), None)   # the longest
        if owner is None:
            problems.append(f"setting {name} belongs to no target declared in BACKUP_TARGETS")
        else:
            given[owner][name[len(owner):]] = env[name]
    available, unavailable, seen = [], [], {}
    for raw, label in declared:
        try:
            spec = _parse_one(raw, label, given.get(settings_key(label), {}), seen,
                              is_embedded=raw == embedded, data_dir=data_dir)
        except TargetSpecError as err:
            unavailable.append(UnavailableTarget(label=cut(label), spec=cut(raw), reason=str(err)))
            continue
        available.append(spec)
    return Targets(tuple(available), tuple(unavailable), tuple(problems))


def _parse_one(raw, label, given, seen, is_embedded, data_dir):
    location = raw.rpartition(":")[0]
    if not location or location.endswith(":/") or "/" in label:
        raise TargetSpecError(f"backup target {shown(raw)} has no label: write it as {FORMS}")
    if not TARGET_LABEL_RE.fullmatch(label):
        raise TargetSpecError(
            f"backup target label {shown(label)} is not valid: use 1 to 64 letters, digits, "
            "'_', '.' or '-', starting with a letter or digit")
    key = settings_key(label)
    if key in seen:
        raise TargetSpecError(f"backup target {label!r}: the label {seen[key]!r} is declared "
                              f"already, and both would read the settings {key}*; rename one")
    seen[key] = label
    scheme = location.split(":", 1)[0].lower()
    if location.lower() == "local":
        _refuse_settings(label, key, given, ())
        return TargetSpec(label=label, kind=LOCAL, spec=raw)
    if scheme == "s3":
        kind, repository = S3, _s3_location(raw, location)
        _refuse_settings(label, key, given, RESTIC_SETTINGS + S3_SETTINGS)
    elif scheme == "file":
        kind, repository = FILE, _file_location(raw, location)
        _refuse_settings(label, key, given, RESTIC_SETTINGS)
    else:
        raise TargetSpecError(f"backup target {shown(raw)} has an unsupported scheme: use {FORMS}")
    return _restic_target(raw, label, kind, repository, key, given, is_embedded, data_dir)


def _refuse_settings(label, key, given, accepted):
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        allowed = ", ".join(key + name for name in accepted) or "none (the local tier has no settings)"
        raise TargetSpecError(f"backup target {label}: {', '.join(key + n for n in unknown)} "
                              f"not accepted here; accepted: {allowed}")


def _s3_location(raw, location):
    url = urlsplit(location[len("s3:"):])
    accepted = "write s3:https://host:port/bucket/prefix:label"
    if url.scheme not in ("http", "https") or not url.hostname:
        raise TargetSpecError(f"backup target {shown(raw)} is not valid: {accepted} (http or https)")
    if url.username or url.password:
        raise TargetSpecError(f"backup target {shown(raw)}: credentials do not belong in the URL; "
                              "give them as the target's S3 key settings")
    try:
        _ = url.port    # urlsplit checks the port only when it is read
    except ValueError:
        raise TargetSpecError(f"backup target {shown(raw)} has an invalid port: {accepted}") from None
    if url.query or url.fragment:
        raise TargetSpecError(f"backup target {shown(raw)}: nothing may follow the path; {accepted}")
    parts = [part for part in url.path.split("/") if part]
    if not parts:
        raise TargetSpecError(f"backup target {shown(raw)} names no bucket: {accepted}")
    if not BUCKET_RE.match(parts[0]) or ".." in parts[0]:
        raise TargetSpecError(f"backup target {shown(raw)}: bucket {shown(parts[0])} is not a valid "
                              "S3 bucket name (3 to 63 lower-case letters, digits, '.' and '-')")
    if any(part in (".", "..") for part in parts[1:]):
        raise TargetSpecError(f"backup target {shown(raw)}: the prefix may not contain '.' or '..'")
    return f"s3:{url.scheme}://{url.netloc}/{'/'.join(parts)}"


def _file_location(raw, location):
    url = urlsplit(location)
    if url.netloc or not url.path.startswith("/") or url.path.rstrip("/") == "" or url.query:
        raise TargetSpecError(f"backup target {shown(raw)} needs an absolute folder: file:///abs/path:label")
    if any(part in (".", "..") for part in url.path.split("/")):
        raise TargetSpecError(f"backup target {shown(raw)}: the path may not contain '.' or '..'")
    return url.path.rstrip("/")


def _one_of(label, key, given, file_name, value_name, what, required=True):
    file_, value = given.get(file_name, "").strip(), given.get(value_name, "")
    if file_ and value:
        raise TargetSpecError(f"backup target {label}: give {key}{file_name} or {key}{value_name}, not both")
    if required and not file_ and not value:
        raise TargetSpecError(f"backup target {label} needs {what}: set {key}{file_name} "
                              f"(a file the plugin sees; preferred) or {key}{value_name}")
    if file_ and not os.path.isabs(file_):
        raise TargetSpecError(f"backup target {label}: {key}{file_name}={shown(file_)} is not an absolute path")
    return file_, value


def _limit(label, key, given, name):
    raw = given.get(name, "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) > MAX_LIMIT_KIB:
        raise TargetSpecError(f"backup target {label}: {key}{name}={shown(raw)} is not valid: use a "
                              f"whole number of KiB/s from 0 (no limit) to {MAX_LIMIT_KIB}")
    return int(raw)


def _restic_target(raw, label, kind, location, key, given, is_embedded, data_dir):
    generate = False
    if is_embedded and not given.get("PASSWORD_FILE") and not given.get("PASSWORD"):
        given = {**given, "PASSWORD_FILE": os.path.join(data_dir, "state", "offsite-target.key")}
        generate = True
    password_file, password = _one_of(label, key, given, "PASSWORD_FILE", "PASSWORD",
                                      "a repository password")
    s3 = {}
    if kind == S3:
        s3 = _s3_settings(raw, label, key, given, location)
    try:
        verify = parse_schedule(given.get("VERIFY", "").strip() or DEFAULT_VERIFY)
        if verify.kind == ON_UNMOUNT:
            raise InvalidOption("on-unmount is a volume event, not a time")
        verify_read = check_subset(given.get("VERIFY_READ", "").strip() or DEFAULT_VERIFY_READ)
    except (InvalidOption, InvalidRequest) as err:
        raise TargetSpecError(f"backup target {label}: {key}VERIFY / {key}VERIFY_READ: {err}") from None
    verify_restore = flag(given, "VERIFY_RESTORE", False, name=f"backup target {label}: {key}VERIFY_RESTORE",
                          meaning=("restore the newest copy and compare", "check only, the default"),
                          error=TargetSpecError)
    try:
        repository = RepositoryConfig(
            location=location, password=password, password_file=password_file,
            limit_upload=_limit(label, key, given, "LIMIT_UPLOAD"),
            limit_download=_limit(label, key, given, "LIMIT_DOWNLOAD"),
            name=f"backup target {label} ({location})", **s3)
    except ConfigError as err:
        raise TargetSpecError(f"backup target {label}: {err}") from None
    return TargetSpec(label=label, kind=kind, spec=raw, repository=repository,
                      generate_password=generate, verify=verify, verify_read=verify_read,
                      verify_restore=verify_restore)


def _s3_settings(raw, label, key, given, location):
    access_key = given.get("S3_ACCESS_KEY_ID", "").strip()
    if not access_key:
        raise TargetSpecError(f"backup target {label} needs {key}S3_ACCESS_KEY_ID")
    secret_file, secret = _one_of(label, key, given, "S3_SECRET_ACCESS_KEY_FILE",
                                  "S3_SECRET_ACCESS_KEY", "an S3 secret access key")
    https = location.startswith("s3:https://")
    ca_file = given.get("CA_FILE", "").strip()
    verify = flag(given, "TLS_VERIFY", None, name=f"backup target {label}: {key}TLS_VERIFY",
                  meaning=("verify, the default", "do not verify"), error=TargetSpecError)
    if (ca_file or verify is not None) and not https:
        raise TargetSpecError(f"backup target {label}: {key}CA_FILE and {key}TLS_VERIFY apply to "
                              f"https:// targets only, not {shown(raw)}")
    if ca_file and verify is False:
        raise TargetSpecError(f"backup target {label}: {key}CA_FILE and {key}TLS_VERIFY=0 "
                              "contradict each other; give one")
    if ca_file and not os.path.isabs(ca_file):
        raise TargetSpecError(f"backup target {label}: {key}CA_FILE={shown(ca_file)} is not an absolute path")
    return {"s3_access_key_id": access_key, "s3_secret_access_key": secret,
            "s3_secret_access_key_file": secret_file,
            "s3_region": given.get("S3_REGION", "").strip(), "ca_file": ca_file,
            "insecure_tls": verify is False}


def read_settings_file(path, read=None):
    """``({KEY: VALUE}, problems)`` of a settings file: ``KEY=VALUE`` lines (blank lines and
    ``#`` comments skipped), only ``BACKUP_TARGET_...`` keys. Never raises: what cannot be
    read or used is a problem, named by its line number (values are never echoed)."""
    try:
        if read is None:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        else:
            text = read(path)
    except (OSError, UnicodeDecodeError) as err:
        return {}, (f"{SETTINGS_FILE}={shown(path)} cannot be read: {getattr(err, 'strerror', None) or err}",)
    found, problems = {}, []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.startswith(PREFIX) or key == SETTINGS_FILE:
            problems.append(f"{SETTINGS_FILE} {shown(path)}, line {number}: not a BACKUP_TARGET_<LABEL>_<NAME>=VALUE "
                            "line; skipped")
        elif key in found:
            problems.append(f"{SETTINGS_FILE} {shown(path)}, line {number}: {key} is given twice; the first is used")
        else:
            found[key] = value.strip()
    return found, tuple(problems)


def targets_from_env(env, data_dir="/var/lib/vsphere-volume", read=None):
    """The Targets of the plugin settings ``env``: ``BACKUP_TARGETS``, the per-target
    settings, and those of the file ``BACKUP_TARGET_SETTINGS_FILE`` names (a setting given
    both as a plugin setting and in the file is refused: the file's is dropped)."""
    env = {str(k): str(v) for k, v in (env or {}).items()}
    path = env.get(SETTINGS_FILE, "").strip()
    extra, problems = read_settings_file(path, read) if path else ({}, ())
    clashes = sorted(key for key in extra if env.get(key, "").strip())
    problems += tuple(f"{key} is given both as a plugin setting and in {SETTINGS_FILE}: the plugin setting is "
                      "used" for key in clashes)
    merged = {**{k: v for k, v in extra.items() if k not in clashes}, **env}
    targets = parse_targets(env.get("BACKUP_TARGETS", ""), merged, data_dir)
    return Targets(targets.available, targets.unavailable, problems + targets.problems)

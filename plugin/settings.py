"""Plugin settings, read once at start from the environment (``docker plugin set``).

Every setting is declared in config.json with a description; this module gives each a
typed value and a default. Secrets (VSPHERE_PASSWORD, ...) are read here but never
logged: ``Settings.public()`` is what may be shown.
"""

import os
from dataclasses import dataclass, field

from .errors import ConfigError
from .jobs import ENABLE_TIMEOUT, CallBudgets
from .redact import redact_url
from .settingvalues import whole_number
from .storespec import parse_store_specs

DATA_DIR = "/var/lib/vsphere-volume"       # a host folder mounted into the plugin
MOUNT_ROOT = "/mnt/volumes"                # config.json's propagatedMount
SOCKET = "/run/docker/plugins/vsphere.sock"


@dataclass
class Settings:
    volume_stores: list
    data_dir: str = DATA_DIR
    mount_root: str = MOUNT_ROOT
    socket: str = SOCKET
    log_level: str = "INFO"
    tz: str = "UTC"
    backup_concurrency: int = 2
    store_refresh: float = 30.0     # seconds between listings of shared stores (0: never)
    enable_timeout: int = ENABLE_TIMEOUT   # docker plugin enable --timeout (0: none)
    env: dict = field(default_factory=dict)   # the raw environment, for the vSphere settings

    @property
    def state_dir(self):
        return os.path.join(self.data_dir, "state")

    @property
    def vch_url(self):
        """VCH_URL: the VCH's Docker API in sidecar mode ("" in direct mode)."""
        return self.env.get("VCH_URL", "").strip()

    @property
    def budgets(self):
        """The Docker calls' jobs.CallBudgets: inside Docker's limits and the enable timeout."""
        return CallBudgets.within(self.enable_timeout)

    def public(self):
        """The settings safe to print: no secrets."""
        shown = {"VOLUME_STORES": [redact_url(s.spec) for s in self.volume_stores], "DATA_DIR": self.data_dir,
                 "MOUNT_ROOT": self.mount_root, "TZ": self.tz,
                 "BACKUP_CONCURRENCY": self.backup_concurrency, "STORE_REFRESH_INTERVAL": self.store_refresh,
                 "PLUGIN_ENABLE_TIMEOUT": self.enable_timeout}
        if self.vch_url:
            shown["VCH_URL"] = redact_url(self.vch_url)
        return shown


def from_env(env=None):
    """Read Settings from ``env`` (default os.environ); raise ConfigError on bad values."""
    env = dict(os.environ if env is None else env)
    data_dir = env.get("DATA_DIR", "").strip() or DATA_DIR
    stores_text = env.get("VOLUME_STORES", "").strip()
    if not stores_text:
        stores_text = f"file://{os.path.join(data_dir, 'default')}:default"
    specs = parse_store_specs(stores_text)
    if not specs:
        raise ConfigError("VOLUME_STORES declares no volume store")
    level = (env.get("LOG_LEVEL", "").strip() or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"LOG_LEVEL={level!r} is not valid: use DEBUG, INFO, WARNING or ERROR")
    tz = env.get("TZ", "").strip() or "UTC"
    try:
        import zoneinfo
        zoneinfo.ZoneInfo(tz)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise ConfigError(f"TZ={tz!r} is not a known time zone: use a name such as UTC or Europe/Paris") from None
    return Settings(
        volume_stores=specs,
        data_dir=data_dir,
        mount_root=env.get("MOUNT_ROOT", "").strip() or MOUNT_ROOT,
        socket=env.get("SOCKET", "").strip() or SOCKET,
        log_level=level,
        tz=tz,
        backup_concurrency=whole_number(env, "BACKUP_CONCURRENCY", 2, 1, 64),
        store_refresh=float(whole_number(env, "STORE_REFRESH_INTERVAL", 30, 0, 86400)),
        enable_timeout=enable_timeout(env),
        env=env,
    )


def enable_timeout(env):
    """PLUGIN_ENABLE_TIMEOUT: the ``docker plugin enable --timeout`` the plugin runs under
    (0: none, enabled by ``docker plugin install`` or at the engine's start)."""
    seconds = whole_number(env, "PLUGIN_ENABLE_TIMEOUT", ENABLE_TIMEOUT, 0, 3600)
    if 0 < seconds < 10:
        raise ConfigError(f"PLUGIN_ENABLE_TIMEOUT={seconds} is not valid: use 0 (no timeout) or 10 to 3600 "
                          "seconds, the --timeout given to docker plugin enable")
    return seconds

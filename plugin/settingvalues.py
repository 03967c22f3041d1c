"""The values plugin settings take, parsed one way everywhere: booleans and whole numbers.

A boolean is ``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off`` (any case);
empty means the setting's default. Every refusal names the setting, repeats the value
(cut) and says what is accepted; ``error`` is the error class to raise (ConfigError by
default; a part with its own, such as an off-site target's, passes it).
"""

from .errors import ConfigError, shown

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def flag(mapping, key, default, name=None, meaning=("", ""), error=ConfigError):
    """The boolean setting ``key`` of ``mapping``; ``default`` when empty. ``name``: how
    messages call it (default ``key``); ``meaning``: what 1 and 0 mean, for the message."""
    raw = str(mapping.get(key, "") or "").strip()
    if not raw:
        return default
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    on, off = (f" ({text})" if text else "" for text in meaning)
    raise error(f"{name or key}={shown(raw)} is not valid: use 1{on} or 0{off} (a boolean: "
                f"{', '.join(TRUE)} / {', '.join(FALSE)})")


def whole_number(mapping, key, default, low, high, error=ConfigError):
    """The whole-number setting ``key`` of ``mapping``, from ``low`` to ``high``;
    ``default`` when empty."""
    raw = str(mapping.get(key, "") or "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise error(f"{key}={shown(raw)} is not valid: use a whole number from {low} to {high}")
    return int(raw)

"""Keeping secrets out of what the plugin shows: errors, logs, Status.

A URL setting may carry a user and password (``https://admin:PW@vcenter/sdk``,
``tcp://admin:PW@vch:2376``); the plugin never uses them from there, and never repeats
them: ``redact_url`` replaces the user-info of a URL value, however malformed the URL
(``https://:PW@/sdk``, ``admin:PW@host``), before it is echoed. Secrets known by their
value (a repository password, the tokens of a notification URL) are taken out of any
text by a ``Redactor``.
"""

from .errors import shown


def redact_url(value):
    """The URL ``value`` with everything between ``scheme://`` (or its start, without a
    scheme) and its last ``@`` replaced by ``***``: a password may hold ``/``, ``?`` or
    ``@`` itself, so the last ``@`` ends it."""
    text = str(value)
    if "@" not in text:
        return text
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


def has_userinfo(value):
    """True when the URL ``value`` carries a user or password (an ``@`` before its host)."""
    return redact_url(value) != str(value)


def shown_url(value):
    """A URL setting as an error message repeats it: user-info redacted, quoted and cut."""
    return shown(redact_url(value))


class Redactor:
    """Replaces each of a set of secret strings (the longest first, so that no part of one
    stays) by ``mask`` in a text."""

    def __init__(self, secrets=(), mask="<redacted>"):
        self.secrets = sorted({str(s) for s in secrets if s}, key=len, reverse=True)
        self.mask = mask

    def __call__(self, text):
        text = str(text)
        for secret in self.secrets:
            text = text.replace(secret, self.mask)
        return text

"""Off-site backup targets: restic repositories on S3-compatible storage or a folder.

Building blocks, wired into the backup service elsewhere:

- ``restic``: one restic repository, driven through the restic CLI (``--json``);
- ``targetspec``: the ``BACKUP_TARGETS`` setting and the per-target settings;
- ``copypolicy``: the ``BackupCopy`` / ``BackupCopyKeep`` volume options;
- ``process``: the subprocess runner restic is called through (timeouts, line callbacks);
- ``messages`` and ``failures``: restic's JSON messages and error texts, read into
  results and typed errors (``errors``).
"""

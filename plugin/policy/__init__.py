"""Backup policy: pure rules, no storage, no clock of their own.

- ``schedule``: the ``Backup`` option and when a volume's next run is;
- ``retention``: the ``BackupKeep`` option, the origins of backups, which backups to prune;
- ``ids``: backup ids, their one pattern, and their order.

They need only ``plugin.errors`` (and croniter): ``plugin.options`` validates volume
options with them, and ``plugin.backup`` carries them out.
"""

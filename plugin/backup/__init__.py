"""Backups: the service the driver holds, where backups are kept, and the engines that copy.

- ``service``: the driver's hooks (``BackupService``), over the parts below; it needs of
  the driver only ``volumes.Volumes``;
- ``api``: the ``/Backup.*`` calls; ``operations``: back up, restore, delete, prune;
  ``status``: what inspect shows of backups; ``final``: the final backup of a remove;
  ``housekeeping``: what a store needs when it first answers; ``scheduler``: the runs;
- ``targets``: where backups are kept (a store's catalog and leases), and which hold a
  volume's; ``repository``/``dsrepository``: the catalog; ``lease``/``dslease``: leases;
  ``manifest``: a backup's record; ``failures``: storage errors as typed errors;
- ``engine``: the engine contract; ``direngine``/``dircopy``, ``vmdkengine``: the engines.

The rules they follow (schedules, retention, ids) are ``plugin.policy``.
"""

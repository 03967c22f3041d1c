"""Backups: schedules, retention, the catalog on the datastore, and the engines that copy."""

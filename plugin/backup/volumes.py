"""What the backup layer needs of the driver: ``Volumes``, five lookups and one request.

The backup service never reaches into the driver's parts. It backs up, restores, prunes
and counts the backups of the volumes the driver holds, and asks it only this:

- ``find(name)``: the Volume called ``name``, or None (memory only, never slow);
- ``lock(name)``: the volume's lock, a re-entrant context manager; attach, detach and
  remove take it too, so an engine holding it keeps them out;
- ``mount_count(name)``: how many times the volume is mounted now (0: not mounted);
- ``store(label)``: the VolumeStore ``label`` if it is available now (tried again at
  once when it is not); raises a VolumeError saying why it is not;
- ``all()``: every known Volume (a snapshot);
- ``create(name, given)``: Docker's Create with the options ``given``; with RestoreFrom
  among them, a restore into a new volume (how restores as a new volume are made).

``driver.VolumeDriver`` provides them.
"""

from typing import Protocol

from ..errors import NotFound, cut


class Volumes(Protocol):
    """The driver as the backup layer sees it (see the module docstring)."""

    def find(self, name):
        """The Volume called ``name``, or None."""

    def lock(self, name):
        """The volume's re-entrant lock, as a context manager."""

    def mount_count(self, name):
        """How many times volume ``name`` is mounted now."""

    def store(self, label):
        """The available VolumeStore ``label``; raises VolumeError when it is unavailable."""

    def all(self):
        """Every known Volume."""

    def create(self, name, given):
        """Create volume ``name`` with options ``given`` as Docker's Create does."""


def existing(volumes, name):
    """The Volume ``name`` of ``volumes``; raises NotFound as the driver's calls do."""
    volume = volumes.find(name)
    if volume is None:
        raise NotFound(f"no volume named {cut(name)}")
    return volume

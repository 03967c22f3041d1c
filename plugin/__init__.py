"""vsphere-volume: a Docker managed volume plugin for vSphere storage with scheduled backups."""

__version__ = "0.1.0"

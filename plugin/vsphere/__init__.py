"""The vSphere client layer: the only package that speaks pyVmomi. Every vCenter call of
the plugin goes through ``session.Session``; the rest of the plugin speaks of disks,
folders, snapshots and VMs through the modules here, never of managed objects.

- ``settings``: VSphereSettings and ``from_env`` (the VSPHERE_* plugin settings).
- ``tls``: certificate verification by CA file, thumbprint (checked here), or not at all.
- ``connection``: the SOAP stub (pyVmomi) and the HTTP session (requests) for a Session.
- ``session``: login, re-login, bounded retries, fault translation, round-trip counting,
  PropertyCollector reads, task waiting, the datastore file interface.
- ``faults``, ``retry``, ``roundtrips``: what the session uses for those.
- ``folders``: files and folders on a datastore (FileManager, listings, small files),
  over ``browse`` (datastore folder listings) and ``files`` (small files over HTTP).
- ``disks``: virtual disk files (VirtualDiskManager: create, UUID, copy, move over).
- ``inventory``: datastores, VMs, and which VM has which disk; ``hostvm``: the Docker
  host's VM (attaching and detaching disks); ``snapshots``: VM snapshots;
  ``vmdisks``: a VM's device list (finding disks, planning attachments).
"""

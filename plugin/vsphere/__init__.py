"""The vSphere client layer. Every vCenter call of the plugin goes through ``session.Session``.

- ``settings``: VSphereSettings and ``from_env`` (the VSPHERE_* plugin settings).
- ``tls``: certificate verification by CA file, thumbprint (checked here), or not at all.
- ``connection``: the SOAP stub (pyVmomi) and the HTTP session (requests) for a Session.
- ``session``: login, re-login, bounded retries, fault translation, round-trip counting,
  PropertyCollector reads, task waiting, the datastore file interface.
- ``faults``, ``retry``, ``roundtrips``: what the session uses for those.
- ``files``: small datastore files over HTTP; ``browse``: datastore folder listings.
- ``inventory``: datastores, VMs, and which VM has which disk; ``hostvm``: the Docker
  host's VM; ``vmdisks``: planning disk attachments on a device list.
"""

"""VCH sidecar mode: a virtual container host (VCH) owns the volumes, this plugin serves them.

With ``VCH_URL`` set, every VIC volume store of ``VOLUME_STORES`` (datastore and NFS
stores; ``file://`` stores stay the plugin's own) is served by a ``store.VchStore``:
create and remove are forwarded to the VCH's Docker API, the plugin keeps the options a
VCH does not know (backup policy) itself, lists the VCH's volumes from a cache refreshed
in the background, and mounts them on this Docker host and backs them up exactly as in
direct mode.

Modules: ``settings`` (VCH_* settings), ``client`` (the docker SDK calls, errors verbatim),
``connection`` (the shared link: listing cache, reachability, refresher), ``policy`` (the
plugin's own options of VCH volumes), ``store`` (VchStore and the Sidecar that wraps stores).
"""

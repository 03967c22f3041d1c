"""Operations: Prometheus metrics, stale/failed backup detection, notifications.

Self-contained building blocks the product wires in (see ``ops.runtime.Ops``):

- ``state``: the plain data the product hands over at scrape/check time (volumes with
  their backup status, stores with availability, the scheduler's queue, mounts);
- ``stale``: when a backup is older than its schedule allows (a pure function);
- ``metrics``: the ``vsphere_volume_*`` series: event recorders plus a collector that
  reads ``state`` at scrape time, in a registry of its own;
- ``serving``: ``/metrics`` over HTTP on its own thread, and the node_exporter textfile;
- ``conditions``, ``notify``, ``delivery``: what is wrong now, one notification per
  (subject, cause) until it recovers, rate-limited, delivered off the request path;
- ``settings``: the METRICS_* and NOTIFY_* plugin settings;
- ``runtime``: the one object the product holds.

Nothing here speaks to vCenter or touches storage.
"""

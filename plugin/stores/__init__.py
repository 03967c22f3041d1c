"""Volume stores: where volumes live (host folders, NFS exports, vSphere datastores)."""

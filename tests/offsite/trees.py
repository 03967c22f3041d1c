"""Folder trees the off-site tests back up, and how to compare two of them."""

import hashlib
import os
import random
from pathlib import Path


def make_tree(root, files, seed, min_size=2_000, max_size=60_000):
    """``files`` files of random (incompressible) bytes in a few nested folders."""
    rng = random.Random(seed)
    root = Path(root)
    for index in range(files):
        folder = root / f"dir{index % 4}" / (f"sub{index % 3}" if index % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{index:04d}.bin").write_bytes(rng.randbytes(rng.randint(min_size, max_size)))
    return root


def digest_tree(root):
    """``{relative path: sha256}`` of the regular files under ``root``."""
    root = Path(root)
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def change_files(root, fraction, seed):
    """Rewrite ``fraction`` of the files with new random bytes (same sizes); their paths."""
    rng = random.Random(seed)
    paths = sorted(p for p in Path(root).rglob("*") if p.is_file())
    chosen = rng.sample(paths, max(1, round(len(paths) * fraction)))
    for path in chosen:
        path.write_bytes(rng.randbytes(path.stat().st_size))
    return chosen

"""Fixtures of the off-site tier: a real S3 server (rclone) on loopback, real restic.

- ``s3``: a started ``S3Server`` over ``tmp_path/s3`` (stopped after the test);
- ``password``: the session's repository password;
- ``repo_location``: an initialised repository in the bucket (a session template's
  files, copied); ``empty_location``: the same place without one;
- ``make_restic(location, cache=..., options=..., **config)``: a ``Restic`` for
  ``location`` with the test's credentials (``config`` overrides RepositoryConfig fields,
  ``options`` are Restic's keyword arguments), its own cache folder per ``cache`` name (a
  second "host" takes another);
- ``tree``: a folder of incompressible files in sub-folders, to back up.
"""

import secrets
import shutil

import pytest

from plugin.offsite.restic import RepositoryConfig, Restic

from .s3server import S3Server
from .trees import make_tree

ACCESS_KEY = "offsite-test-access"


@pytest.fixture
def s3_secret():
    return "s3-secret-" + secrets.token_hex(12)


@pytest.fixture
def s3(tmp_path, s3_secret):
    server = S3Server(tmp_path / "s3", ACCESS_KEY, s3_secret).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def password():
    return "repo-password-" + secrets.token_hex(12)


@pytest.fixture(scope="session")
def template_repository(tmp_path_factory, password):
    """A repository made once per session (restic's init takes seconds: it calibrates its
    key derivation), copied as files into each test's bucket by ``repo_location``."""
    folder = tmp_path_factory.mktemp("template") / "repo"
    Restic(RepositoryConfig(location=str(folder), password=password)).ensure_initialised()
    return folder


@pytest.fixture
def make_restic(tmp_path, password, s3_secret):
    def make(location, cache="host-a", options=None, **overrides):
        config = {"location": location, "password": password, "name": "backup target offsite"}
        if location.startswith("s3:"):
            config.update(s3_access_key_id=ACCESS_KEY, s3_secret_access_key=s3_secret)
        config.update(overrides)
        return Restic(RepositoryConfig(**config), cache_dir=str(tmp_path / "cache" / cache),
                      **(options or {}))
    return make


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "volume"
    make_tree(root, files=60, seed=1)
    return root


@pytest.fixture
def repo_location(s3, template_repository):
    """An initialised repository at ``backups/offsite/repo`` of the test's S3 server."""
    shutil.copytree(template_repository, s3.root / "backups" / "offsite" / "repo")
    return s3.location("backups", "offsite/repo")


@pytest.fixture
def empty_location(s3):
    """Where no repository is yet."""
    return s3.location("backups", "offsite/repo")


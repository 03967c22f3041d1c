"""A TCP relay the tests put between the plugin and the vCenter simulator, to make
vCenter unreachable and reachable again on the same address without stopping the
simulator (which would take its datastores with it).

``TcpRelay(target).start()`` listens on a free port of 127.0.0.1 (the same port again
after ``stop``); ``stop()`` closes the listener and every relayed connection, so the
plugin sees "connection refused" until ``start()``. ``latency`` (seconds) delays what
the client sends: every request then costs that much more, as over a real network
(benchmarks use it for a vCenter's round trip, SOAP and HTTP alike).
"""

import socket
import threading
import time


class TcpRelay:
    def __init__(self, target_host, target_port, host="127.0.0.1", port=0, latency=0.0):
        self.target = (target_host, target_port)
        self.host, self.port = host, port
        self.latency = latency
        self._listener = None
        self._connections = []
        self._lock = threading.Lock()

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def start(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self):
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return            # stopped
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._connections += [client, upstream]
            for source, sink, delay in ((client, upstream, self.latency), (upstream, client, 0.0)):
                threading.Thread(target=self._pump, args=(source, sink, delay), daemon=True).start()

    @staticmethod
    def _pump(source, sink, delay):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if delay:
                    time.sleep(delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

"""A TCP proxy on loopback in front of PostgreSQL that can refuse connections on demand,
so the fault campaign can make "the database" go away without touching the shared server.

    python proof/pgproxy.py <listen port> <upstream host> <upstream port>

SIGUSR1: stop listening (new connections get ECONNREFUSED) and cut every open connection.
SIGUSR2: listen again.   SIGTERM: exit.
It runs as its own process so the load generator's threads never slow the database path.
"""

import selectors
import signal
import socket
import sys
import threading


class Proxy:
    def __init__(self, port: int, upstream: tuple[str, int]):
        self.port, self.upstream = port, upstream
        self.listener: socket.socket | None = None
        self.conns: set[socket.socket] = set()
        self.lock = threading.Lock()

    def listen(self) -> None:
        if self.listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(512)
        self.listener = listener
        threading.Thread(target=self.accept, args=(listener,), daemon=True).start()

    def accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.update((client, upstream))
            threading.Thread(target=self.pump, args=(client, upstream), daemon=True).start()

    def pump(self, a: socket.socket, b: socket.socket) -> None:
        """Both directions of one connection in one thread (select), until either side ends."""
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        try:
            while True:
                for key, _ in sel.select():
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            pass
        finally:
            sel.close()
            for s in (a, b):
                self.close(s)

    def close(self, s: socket.socket) -> None:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
        with self.lock:
            self.conns.discard(s)

    def refuse(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        with self.lock:
            conns = list(self.conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main() -> None:
    port, host, upstream_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    proxy = Proxy(port, (host, upstream_port))
    proxy.listen()
    signal.signal(signal.SIGUSR1, lambda *_: proxy.refuse())
    signal.signal(signal.SIGUSR2, lambda *_: proxy.listen())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()

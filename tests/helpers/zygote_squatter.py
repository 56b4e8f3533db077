"""A process that takes the zygote's socket path for itself.

  zygote_squatter.py PATH LOG [--hold-lock] [--stale]

Binds PATH (replacing a file there), prints READY, and logs how many
bytes each connection sent to LOG.  --hold-lock also flocks the sibling
.lock file first, as a zygote does; --stale binds and exits at once,
leaving a socket file nobody listens on.
"""

import fcntl
import os
import socket
import sys


def main() -> int:
    path, log = sys.argv[1], sys.argv[2]
    if "--hold-lock" in sys.argv:
        lock = os.open(path[: -len(".sock")] + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(path)
    if "--stale" in sys.argv:
        print("READY", flush=True)
        return 0
    s.listen(16)
    print("READY", flush=True)
    while True:
        conn, _ = s.accept()
        data = b""
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        with open(log, "a") as f:
            f.write(f"GOT {len(data)} bytes\n")
        conn.close()


if __name__ == "__main__":
    sys.exit(main())

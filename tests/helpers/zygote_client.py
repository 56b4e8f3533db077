"""A hand-made zygote client for the security tests: it speaks the
protocol (or not) the way an attacker could, and says what came back.

  zygote_client.py PATH|fd:N MODE [--module M] [--env K=V ...] [--payload TEXT]

MODE: ``request`` sends a request with this process's stdio and cwd and
prints ``REPLY S <exit status>``, ``REPLY R <reason>`` or ``REPLY EOF``; ``send-and-exit``
sends it and exits without waiting (its stdio stays open in the request:
give it files, not pipes); ``silent`` connects, prints
``CONNECTED`` and sends nothing until killed.
"""

import argparse
import os
import socket
import struct
import sys
import time

MAGIC = b"dockline-zygote/2"


def receive(sock, size: int) -> bytes:
    for _ in range(2):
        try:
            return sock.recv(size)
        except ConnectionResetError:
            continue  # reported once; what was sent before is still there
    return b""


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("target")
    p.add_argument("mode", choices=("request", "send-and-exit", "silent"))
    p.add_argument("--module", default="dockline.plugins.host_local")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--payload", help="send this instead of a well-formed request")
    a = p.parse_args()
    path = a.target if not a.target.startswith("fd:") else f"/proc/self/fd/{a.target[3:]}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(path)
    except OSError as exc:
        print(f"CONNECT-FAILED {exc.errno}", flush=True)
        return 0
    if a.mode == "silent":
        print("CONNECTED", flush=True)
        while True:
            time.sleep(60)
    if a.payload is not None:
        payload = a.payload.encode()
    else:
        env = [e.encode("utf-8", "surrogateescape") for e in a.env]
        payload = b"\0".join([MAGIC, a.module.encode()] + env)
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
    try:
        sock.sendmsg(
            [payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("4i", 0, 1, 2, cwd))]
        )
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused before we spoke: the reason is waiting
    if a.mode == "send-and-exit":
        os._exit(0)
    first = receive(sock, 512)
    if first == b"S":
        reply = receive(sock, 16)
        said = "S " + (str(struct.unpack("i", reply)[0]) if len(reply) == 4 else "died")
    elif first[:1] == b"R":
        said = "R " + first[1:].decode(errors="replace")
    else:
        said = f"EOF {first!r}"
    sys.stdout.write(f"\nREPLY {said}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

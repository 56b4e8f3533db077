"""static: fixed addresses from the config, nothing to allocate or free."""
from __future__ import annotations

from dockline.cni import skel
from dockline.cni.skel import Request
from dockline.ipam import static


def cmd_add(req: Request) -> dict:
    return static.load(req)


def cmd_del(req: Request) -> None:
    static.load(req)  # nothing is held; still refuse a broken config


def cmd_check(req: Request) -> None:
    # The addresses live on the interface the main plugin configured; the
    # main plugin's CHECK verifies them, so static only validates its config.
    static.load(req)


def cmd_status(req: Request) -> None:
    static.load(req)


HANDLERS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": None,
            "STATUS": cmd_status}


ABOUT = "dockline static"


def main() -> None:
    skel.main(HANDLERS, ABOUT)


if __name__ == "__main__":
    main()

"""Drive cluster-mode allocation in-process, as host-local does, without
the plugin executable: ``python ipamdriver.py OP JSON`` in the sandbox.

OP is add, del or status; JSON holds cluster, ranges, network, dataDir,
containerID, ifname.  Prints the result (or the CNI error) as JSON.
"""

from __future__ import annotations

import json
import sys

from dockline.cluster import config as cluster_config
from dockline.cluster import ipam
from dockline.cni.errors import CniError
from dockline.ipam.allocator import Allocator
from dockline.ipam.config import HostLocalConfig
from dockline.ipam.disk import DiskStore
from dockline.ipam.ranges import RangeSet


def main() -> None:
    op, doc = sys.argv[1], json.loads(sys.argv[2])
    try:
        cconf = cluster_config.parse(doc["cluster"])
        conf = HostLocalConfig(
            network=doc["network"],
            range_sets=[RangeSet.from_config(rs, i) for i, rs in enumerate(doc["ranges"])],
            routes=[],
            data_dir=doc["dataDir"],
            resolv_conf="",
            requested=[],
        )
        if op == "add":
            allocs = ipam.allocate(cconf, conf, doc["containerID"], doc["ifname"])
            out = {"ips": [a.to_result_ip() for a in allocs]}
        elif op == "del":
            disk = DiskStore(conf.network, conf.data_dir)
            Allocator(disk, []).release(doc["containerID"], doc["ifname"])
            ipam.return_empty({"cluster": doc["cluster"]}, conf.network, conf.data_dir)
            out = {}
        elif op == "status":
            ipam.status(cconf, conf.network, conf.data_dir)
            out = {}
        else:
            raise SystemExit(f"unknown op {op}")
    except CniError as exc:
        out = {"code": exc.code, "msg": exc.msg, "details": exc.details}
    print(json.dumps(out))


main()

"""dockline's CNI plugins, one module each, and the table naming them.

``TYPES`` (CNI plugin type -> module) is the one declaration of what dockline
ships: ``dockline install`` writes a launcher per entry, the zygote serves
only these modules, and a delegated IPAM type that resolves to one of
dockline's own launchers runs in-process from it.  Each module exports
``HANDLERS`` (CNI command -> handler) and ``ABOUT``.
"""

TYPES = {
    "host-local": "dockline.plugins.host_local",
    "static": "dockline.plugins.static",
    "bridge": "dockline.plugins.bridge",
    "portmap": "dockline.plugins.portmap",
}

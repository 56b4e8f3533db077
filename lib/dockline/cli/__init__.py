"""The ``dockline`` command: a cnitool that needs no Go, an operator's view
of CNI networks (networks, inspect, gc, validate), and the installer of the
plugin executables.  See dockline.cli.main for the commands."""

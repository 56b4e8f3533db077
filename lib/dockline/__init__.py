"""dockline: container networking plugins for any CNI runtime."""

__version__ = "0.1.0"

"""Tools around the plugins (not on any plugin's path)."""

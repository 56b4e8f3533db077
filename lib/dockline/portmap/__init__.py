"""The portmap plugin's configuration: mappings, options, the container's
addresses from prevResult."""

"""The CNI protocol, in one place: environment and stdin in, result or
error JSON out, conversion between every spec version, delegation."""

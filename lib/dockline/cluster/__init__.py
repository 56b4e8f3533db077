"""Cluster mode: networks that span hosts, with shared state in etcd.

Imported only when a network config has a ``cluster`` object; the
single-host path never loads this package (a start-up guard test checks).
"""

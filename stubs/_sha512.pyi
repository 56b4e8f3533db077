# The C module behind hashlib.sha512 (firewall/masquerade.py imports it
# directly: hashlib costs ~5 ms to import).  typeshed has no stub for it.
from hashlib import sha512 as sha512

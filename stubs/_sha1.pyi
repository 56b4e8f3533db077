# The C module behind hashlib.sha1 (zygote.py imports it directly: hashlib
# costs ~2 ms on every plugin call).  typeshed has no stub of its own for it.
from hashlib import sha1 as sha1

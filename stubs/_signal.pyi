# The C module behind signal (zygote.py imports it directly: signal.py
# costs enum on every plugin call).  typeshed has no stub of its own for it.
from signal import *  # noqa: F403

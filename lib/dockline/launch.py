"""What a plugin executable runs: hand the call to a warm zygote, or serve
it in this process.

Loading pyroute2 and the rest of a plugin costs ~35 ms per call, more than
the reference's whole ADD.  A zygote is a process that has loaded every
plugin once and forks a child per call; the executable (this module, ~1 ms
of imports) passes it its environment, working directory and
stdin/stdout/stderr, and exits with the child's status.  The child writes
the result straight to the runtime's stdout, so the runtime sees exactly
what an in-process run would print.  Without a zygote the call is served
here (dockline.serve), and a zygote is started in the background for the
next calls.  See dockline.zygote.
"""

import sys

from .plugins import TYPES

# Only built-in modules until the call is known to be served here: `os`
# alone costs ~1.3 ms to import, `from __future__` ~0.2 ms.


def _exit(code: int) -> None:
    """Flush and leave without the interpreter's teardown (~4 ms): there is
    nothing left to clean up that the kernel does not clean up."""
    import posix

    sys.stdout.flush()
    sys.stderr.flush()
    posix._exit(code)


def launch(
    plugin_type: str, paths: list[str], stamp: str, zygote: bool = True, test_hooks: bool = False
) -> None:
    import posix

    env = posix.environ  # bytes to bytes
    command = env.get(b"CNI_COMMAND", b"")
    if command == b"VERSION":  # runtimes send it before every call: keep it bare
        from dockline.cni import skel

        _exit(skel.run({}, "dockline"))
    module = TYPES[plugin_type]
    if test_hooks:  # the crash tests' executables: always in this process
        from dockline.bridge import undo

        undo.enable_crash_hook()
        zygote = False
    if not command or not zygote or env.get(b"DOCKLINE_NO_ZYGOTE"):
        _exit(_serve_here(module, paths, stamp, zygote, test_hooks))
    from dockline.zygote import SERVE_AND_START, call, start_in_background

    code = call(module, stamp)
    if code < 0:  # nothing ran in a zygote: serve it here
        outcome = code
        code = _serve_here(module, paths, stamp, zygote, test_hooks)
        sys.stdout.flush()
        if outcome == SERVE_AND_START:
            start_in_background(stamp, paths)
    _exit(code)


def _serve_here(module: str, paths: list[str], stamp: str, zygote: bool, test_hooks: bool) -> int:
    from . import launcher
    from .serve import serve_here

    launcher.CURRENT = launcher.facts_of_this_process(paths, stamp, zygote, test_hooks)
    return serve_here(module)

"""The positional arguments ctest passes an end-to-end script (the binaries and folders it tests), taken off
sys.argv so that what follows them goes to unittest."""
import os
import sys


def take_arguments(*names):
    """sys.argv[1:1+len(names)] as absolute paths, removed from sys.argv. Fewer arguments than names is a usage
    error naming them all, and so is a path that does not exist: a binary or folder missing from the build fails
    the test, it is never skipped."""
    script = os.path.basename(sys.argv[0])
    given = sys.argv[1:1 + len(names)]
    if len(given) < len(names):
        sys.exit(f"usage: {script} {' '.join(names)} [unittest arguments]\n"
                 f"{script}: missing {' '.join(names[len(given):])}")
    paths = [os.path.abspath(p) for p in given]
    for name, path in zip(names, paths):
        if not os.path.exists(path):
            sys.exit(f"{script}: {name} {path} does not exist (is it built?)")
    del sys.argv[1:1 + len(names)]
    return paths[0] if len(paths) == 1 else paths

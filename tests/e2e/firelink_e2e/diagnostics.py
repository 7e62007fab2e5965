"""What a failed end-to-end test leaves for whoever reads ctest's output: the tail of its processes' logs."""
import os
import sys


def test_failed(test):
    """Whether `test` (a unittest.TestCase, asked in its tearDown) has failed or errored so far."""
    outcome = getattr(test, "_outcome", None)
    if outcome is None:
        return True
    if hasattr(outcome, "errors"):  # Python < 3.11
        return any(exc for _, exc in outcome.errors)
    result = outcome.result
    return not outcome.success or any(t is test for t, _ in result.failures + result.errors)


def print_logs_if_failed(test, folder, names=("host.log", "receiver.log"), lines=60):
    """In `test`'s tearDown: when it failed, the last `lines` lines of each log `names` in `folder`, on stderr."""
    if not test_failed(test):
        return
    for name in names:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                sys.stderr.write(f"---- {name} (last {lines} lines) ----\n" + "".join(f.readlines()[-lines:]))

import gc
import os
import sys

if os.environ.get("MULTIARG_JOB_SERVER"):
    from .jobserver import ENV, submit

    code = submit(os.environ[ENV], sys.argv)
    if code is not None:
        sys.exit(code)

from .cli import main  # noqa: E402

main()
# At exit Python's collector walks every object still alive: with PyTorch and torch._dynamo loaded, most of a
# second a job (bench/job_exit.py). Frozen, they are left to the OS, as they would be anyway; outputs are already
# written and closed, and atexit handlers (logging's flush) still run.
gc.freeze()

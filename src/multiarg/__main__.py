import gc

from .cli import main

main()
# At exit Python's collector walks every object still alive: with PyTorch and torch._dynamo loaded, most of a
# second a job (bench/job_exit.py). Frozen, they are left to the OS, as they would be anyway; outputs are already
# written and closed, and atexit handlers (logging's flush) still run.
gc.freeze()

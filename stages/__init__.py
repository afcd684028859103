"""The DVC stages of the pipeline (one module each) and their library code in `stages.lib`.

While a stage started as `python -m stages.<name>` is still importing, Ctrl-C ends it at once with
one line (nothing is written yet); once its main() runs, stages.lib.cli.run handles Ctrl-C.
"""
import os
import signal
import sys


def _interrupted_while_starting(signum, frame):
    sys.stderr.write("error: interrupted; no outputs were written\n")
    os._exit(130)


if sys.argv[:1] == ["-m"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_while_starting)

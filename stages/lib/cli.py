"""The command line every stage runs under: its argument parser and the error contract of
stages.lib.errors (one line `error: …` on stderr and exit status 2; Ctrl-C is one line and 130, and
SIGTERM, what `timeout` and schedulers send, one line and 143; either way no output is changed).
"""
import argparse
import signal
import sys

from stages.lib.errors import StageError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def parser(description):
    """An argument parser with the --params option every stage takes; its errors are one line."""
    p = _Parser(description=description.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the stage is, so that its staged outputs are cleaned up as for Ctrl-C."""


def _terminate(signum, frame):
    raise Terminated


def run(main):
    """Run a stage's main() under the one-line error contract."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C from here on: clean up, then one line
    signal.signal(signal.SIGTERM, _terminate)
    try:
        main()
    except StageError as error:
        _fail(str(error), 2)
    except OSError as error:  # a full disk, a folder that cannot be written, ...
        where = f"{error.filename}: " if error.filename else ""
        _fail(f"{where}{error.strerror or error}", 2)
    except MemoryError:
        _fail("out of memory; use smaller sizes in params.yaml", 2)
    except Terminated:
        _fail("terminated (SIGTERM); no outputs were written", 128 + signal.SIGTERM)
    except KeyboardInterrupt:
        _fail("interrupted; no outputs were written", 130)


def _fail(message, status):
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(status)

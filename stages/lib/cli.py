"""The command line every stage runs under.

A problem the user can fix (bad params, a missing or corrupt input, an output that cannot be written,
unreachable data) is one line `error: …` on stderr and exit status 2; Ctrl-C is one line and 130.
"""
import argparse
import signal
import sys


class StageError(Exception):
    """A problem the user can fix; its message is one line that names the key or file."""


class UsageError(StageError):
    """A bad command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def parser(description):
    """An argument parser with the --params option every stage takes; its errors are one line."""
    p = _Parser(description=description.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    return p


def run(main):
    """Run a stage's main() under the one-line error contract."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C from here on: clean up, then one line
    try:
        main()
    except StageError as error:
        _fail(str(error), 2)
    except OSError as error:  # a full disk, a folder that cannot be written, ...
        where = f"{error.filename}: " if error.filename else ""
        _fail(f"{where}{error.strerror or error}", 2)
    except MemoryError:
        _fail("out of memory; use smaller sizes in params.yaml", 2)
    except KeyboardInterrupt:
        _fail("interrupted; no outputs were written", 130)


def _fail(message, status):
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(status)


def warn(message):
    print(f"warning: {message}", file=sys.stderr)

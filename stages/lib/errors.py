"""The one contract every stage keeps with its user: a problem the user can fix (a bad param, a missing
or corrupt input, an output that cannot be written, unreachable data) is a StageError whose message is
one line naming the key or file; stages.lib.cli prints it as `error: …` and exits with status 2.
Library code raises these and warns through `warn`; it never touches the command line.
"""
import sys


class StageError(Exception):
    """A problem the user can fix; its message is one line that names the key or file."""


class UsageError(StageError):
    """A bad command line."""


def warn(message):
    """A one-line warning on stderr: the run goes on."""
    print(f"warning: {message}", file=sys.stderr)

"""One error family for the whole package, and the way every command line ends on one.

Every error this package raises for a user to read (a bad config, a missing model or
labels file, an unusable frame, a failed export, a bad launch argument) is an
EdgeClassifierError: its message names the file, key or argument and the fix. Commands
print that message and exit with code 2, never a traceback.
"""
import functools
import sys

EXIT_USAGE = 2  # what argparse uses for a bad command line, and what a bad config gets


class EdgeClassifierError(Exception):
    """Base of the package's errors: the message is what the user reads, fix included."""


def cli(label):
    """Decorate a main(argv) so an EdgeClassifierError ends it with its message and exit 2."""
    def wrap(main):
        @functools.wraps(main)
        def run(*args, **kwargs):
            try:
                return main(*args, **kwargs)
            except EdgeClassifierError as exc:
                print(f'{label}: error: {exc}', file=sys.stderr)
                return EXIT_USAGE
        return run
    return wrap

"""The user-error type. Every error that means "the input is wrong" (a spec,
a path, a flag, a dataset, an experiment folder) derives from
:class:`UserError`: the CLI prints its message on one line and exits with
status 2. Any other exception is a bug in scenetune: the CLI prints the
traceback, says so, and exits with status 1."""


class UserError(Exception):
    """Bad input from the user, reported in one line naming what is wrong."""

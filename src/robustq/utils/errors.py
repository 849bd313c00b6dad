"""The one exception type robustq raises for bad input; the CLI turns it into a one-line error."""


class RobustqError(ValueError):
    """Bad input or configuration: the message names the file or option and what was expected."""

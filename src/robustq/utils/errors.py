"""The one exception type robustq raises for bad input; the CLI turns it into a one-line error."""


class RobustqError(ValueError):
    """Bad input or configuration: the message names the file or option and what was expected."""


class RobustqWarning(UserWarning):
    """Something worked around (an optional cache that could not be used): the CLI prints it as
    one ``warning:`` line."""

"""The one exception type for a user's bad input.

Raised with a single line that names the file (or the setting) at fault, so the CLI can
print it in red and exit non-zero without a traceback, and batch commands can skip the file,
report it, and keep the rest.
"""


class InputError(ValueError):
    """A bad file or setting supplied by the user: one line, naming the culprit."""


def check_choice(name: str, value: object, choices) -> None:
    """One line naming the setting when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}, got {value!r}")

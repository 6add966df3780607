"""The one exception the lab raises: its message is the single line a user sees."""


class LabError(Exception):
    """A lab step failed; ``str(err)`` is one line naming the cause."""

"""The base class of the failures an operator can act on (a port in use, a missing tool).

The CLI prints them as one line and exits 1; anything else is a bug and keeps its traceback.
"""


class FinkError(RuntimeError):
    """An expected operational failure, with a message that says what to do."""

    #: whether the failure may pass by itself (an outage), so that a supervised service
    #: starts again rather than ending (``services.supervision``)
    transient: bool = False

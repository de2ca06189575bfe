"""The one error type whose message is shown to users as a single line."""


class LtuneError(Exception):
    """A problem with the user's input or environment.

    The CLI prints ``ltune: <message>`` on one line and exits non-zero, without a
    traceback. The message must name the problem and the fix.
    """

"""The platform supervisor's own error type."""


class PlatformError(Exception):
    """The platform cannot be started or stopped as asked; the message says what to do."""

"""The one exception the stack commands raise; its message says what went wrong and what to do."""


class StackError(Exception):
    """Starting, stopping or inspecting the native stack failed."""

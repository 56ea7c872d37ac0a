def require(condition, flag, expected, value):
    """A one-line error naming the flag, raised when a criterion is built."""
    if not condition:
        raise ValueError(f"{flag} must be {expected}, got {value}")

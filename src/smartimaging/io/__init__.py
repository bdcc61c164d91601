"""smartimaging.io."""

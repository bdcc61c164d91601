"""smartimaging.study."""

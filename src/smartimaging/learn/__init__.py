"""smartimaging.learn."""

"""smartimaging.synthetic."""

"""smartimaging.features."""

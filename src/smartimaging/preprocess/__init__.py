"""smartimaging.preprocess."""

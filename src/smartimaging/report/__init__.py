"""smartimaging.report."""

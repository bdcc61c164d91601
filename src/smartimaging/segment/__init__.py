"""smartimaging.segment."""

"""Public data sets read from local files (no downloads)."""

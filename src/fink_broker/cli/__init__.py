"""The `fink` command line."""

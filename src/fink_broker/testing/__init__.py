"""The test suite as an installed command (``fink_test``) and its JVM guard (a pytest plugin)."""

"""Fink's services, one module each: a pure DataFrame builder plus a runner that owns I/O."""

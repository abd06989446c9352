"""Fink: an astronomical alert broker on Spark Structured Streaming and Kafka."""

__version__ = "0.1.0"
__all__ = ["__version__"]

"""The Spark side of Fink: the only package (with services and infra) that imports pyspark."""

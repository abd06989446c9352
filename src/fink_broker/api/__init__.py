"""The REST API over the HBase archive: FastAPI app, HBase reads, output formats, cutouts."""

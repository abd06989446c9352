"""``fink start api``: serve the REST API with uvicorn until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging

from fink_broker.config import Settings

log = logging.getLogger(__name__)


def serve(settings: Settings) -> None:
    """Run the API of both surveys on ``api.host:api.port`` (blocks).

    uvicorn finishes the requests in flight on SIGTERM, so `fink stop api` is graceful.
    """
    import uvicorn

    from fink_broker.api.app import create_app

    app = create_app(settings)
    log.info(
        "Fink API (/ztf, /rubin; unprefixed: %s) on http://%s:%d, HBase %s:%d, docs at /docs",
        settings.stream2raw.survey,
        settings.api.host,
        settings.api.port,
        settings.hbase.thrift_host,
        settings.hbase.thrift_port,
    )
    uvicorn.run(app, host=settings.api.host, port=settings.api.port, log_level="info")

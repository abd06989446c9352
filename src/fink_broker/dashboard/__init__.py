"""The operator's dashboard: one web page that shows the broker live.

``fink start dashboard`` serves it on ``dashboard.host:dashboard.port`` (127.0.0.1:8050 by
default). It reads only what the services already record, so it adds no work to them:

- Fink's PID records (up or down, uptime, CPU, memory) and each service's metrics file
  (micro-batches, rates in and out, quarantined alerts, cuts by reason, restarts):
  :mod:`~fink_broker.dashboard.services_view`, :mod:`~fink_broker.dashboard.metrics_feed`;
- stream2raw's checkpoint against the input topics' end offsets (lag), and the output
  topics' watermarks: :mod:`~fink_broker.dashboard.kafka_view`;
- the provenance times of the newest committed science files (latency percentiles) and
  their newest alerts: :mod:`~fink_broker.dashboard.science_window`;
- the REST API, for cutouts and light curves, when it runs:
  :mod:`~fink_broker.dashboard.api_client`.
"""

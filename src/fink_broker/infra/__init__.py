"""Local JVM components for the laptop case, and the processes Fink starts for them.

``jars`` resolves the Kafka broker, Spark connector and HBase jars from Maven Central once into
a cache and builds Fink's own JVM functions; ``kafka_local`` runs a single-node KRaft broker on
127.0.0.1; ``hbase_local`` a standalone HBase and its Thrift gateway, which ``hbase_client``
connects to (``hbase_schema`` keeps the archive's schema rows); ``processes`` records what
Fink started in PID files so that ``fink show`` and ``fink stop`` act on those processes only,
never on whatever matches a name pattern.
On a cluster none of this runs: the config points at existing brokers and masters.
"""

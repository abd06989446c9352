"""Benchmark: what each route from decoded alerts to the raw Parquet archive costs.

stream2raw decodes on the JVM (``from_avro``) and writes with Spark's row-based Parquet
writer. Two columnar routes look cheaper on paper: hand the decoded rows to Python as Arrow
batches and write them with pyarrow, or decode in Python into Arrow and skip the JVM rows.
This prints, on the same alerts (the datasim files repeated with fresh ids and distinct
cutout pixels), local[2]:

  - Spark: Kafka-like rows (value bytes + topic, partition, offset, timestamp) -> decode
    -> Parquet, i.e. stream2raw without the Kafka source;
  - Spark: decoded rows -> Parquet, stream2raw's writer alone;
  - Arrow handoff: decoded rows -> Arrow batches in a Python worker, nothing written (the
    least a pyarrow writer on Spark's rows would cost);
  - Arrow handoff + pyarrow Parquet write (zstd), one file per task;
  - bare Python on one core, per alert: fastavro decode, Arrow build from the records
    (``Table.from_pylist``), pyarrow Parquet write (zstd).

Routes alternate within each round; medians of the rounds after the first.

    .venv/bin/python benchmarks/raw_write_routes.py --survey rubin --rows 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

import benchmarks.stream2raw  # noqa: E402
from benchmarks.rounds import alternating_rounds  # noqa: E402
from benchmarks.scratch import add_keep_option, scratch_folder, scratch_paths  # noqa: E402
from benchmarks.stream2raw import container_payload  # noqa: E402

from fink_broker.config import load_settings  # noqa: E402
from fink_broker.simulator.replay import AlertSource  # noqa: E402
from fink_broker.surveys import get_adapter  # noqa: E402
from fink_broker.surveys.base import SurveyAdapter  # noqa: E402

#: pyarrow's Parquet codec, as Spark's (``spark.sql.parquet.compression.codec``)
CODEC = "zstd"


def kafka_like_table(source: AlertSource, rows: int, topic: str) -> pa.Table:
    """``rows`` messages of ``source`` with the Kafka source's columns."""
    values = [source.message(i)[1] for i in range(rows)]
    now = dt.datetime.now(dt.UTC)
    return pa.table(
        {
            "key": pa.array([None] * rows, pa.binary()),
            "value": pa.array(values, pa.binary()),
            "topic": pa.array([topic] * rows, pa.string()),
            "partition": pa.array([i % 4 for i in range(rows)], pa.int32()),
            "offset": pa.array([i // 4 for i in range(rows)], pa.int64()),
            "timestamp": pa.array([now] * rows, pa.timestamp("us", tz="UTC")),
            "timestampType": pa.array([0] * rows, pa.int32()),
        }
    )


def python_decoder(adapter: SurveyAdapter) -> Callable[[bytes], dict]:
    """fastavro decode of one message as the survey frames it, each schema parsed once
    (a ZTF container's own schema, by its text, as in ``bare_python_rate``)."""
    if adapter.framing == "confluent_wire":
        parsed = adapter.wire_schemas()[0].parsed
        return lambda m: fastavro.schemaless_reader(io.BytesIO(m[5:]), parsed, None)
    schemas: dict[bytes, object] = {}

    def decode(message: bytes) -> dict:
        text, body = container_payload(message)
        parsed = schemas.get(text)
        if parsed is None:
            parsed = schemas[text] = fastavro.parse_schema(json.loads(text))
        return fastavro.schemaless_reader(io.BytesIO(body), parsed, None)

    return decode


def bare_python(adapter: SurveyAdapter, values: list[bytes], folder: Path) -> dict[str, float]:
    """Milliseconds per alert on one core: decode, Arrow build, Parquet write."""
    decode = python_decoder(adapter)
    t0 = time.perf_counter()
    records = [decode(m) for m in values]
    decoding = time.perf_counter() - t0
    schema = pa.Table.from_pylist(records).schema  # untimed: a stream would know it
    t0 = time.perf_counter()
    table = pa.Table.from_pylist(records, schema=schema)
    building = time.perf_counter() - t0
    t0 = time.perf_counter()
    pq.write_table(table, folder / "bare.parquet", compression=CODEC)
    writing = time.perf_counter() - t0
    n = len(values)
    return {
        "fastavro decode": 1e3 * decoding / n,
        "Arrow build (from_pylist)": 1e3 * building / n,
        f"pyarrow Parquet write ({CODEC})": 1e3 * writing / n,
    }


def count_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: receive every batch, keep nothing."""
    rows = sum(batch.num_rows for batch in batches)
    yield pa.RecordBatch.from_pylist([{"rows": rows}])


MapInArrow = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]


def write_task_file(folder: str, tables: Iterator[pa.Table]) -> Iterator[pa.RecordBatch]:
    """Write a task's tables to one Parquet file with pyarrow; yield the row count."""
    writer, rows = None, 0
    path = f"{folder}/part-{uuid.uuid4().hex}.parquet"
    for table in tables:
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression=CODEC)
        writer.write_table(table)
        rows += table.num_rows
    if writer is not None:
        writer.close()
    yield pa.RecordBatch.from_pylist([{"rows": rows}])


def pyarrow_writer(folder: str) -> MapInArrow:
    """mapInArrow body: write the task's batches as they come."""
    return lambda batches: write_task_file(folder, (pa.Table.from_batches([b]) for b in batches))


def python_decode_writer(adapter: SurveyAdapter, schema: pa.Schema, folder: str) -> MapInArrow:
    """mapInArrow body on Kafka rows: fastavro decode, Arrow build, then the write."""

    def tables(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.Table]:
        decode = python_decoder(adapter)
        for batch in batches:
            records = [decode(m) for m in batch.column("value").to_pylist()]
            table = pa.Table.from_pylist(records, schema=schema)
            for name in ("topic", "partition", "offset", "timestamp"):
                table = table.append_column(f"kafka_{name}", batch.column(name))
            yield table

    return lambda batches: write_task_file(folder, tables(batches))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", choices=["ztf", "rubin"], default="rubin")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--datasim", default=str(REPO.parent / "shared" / "datasim"))
    add_keep_option(parser)
    args = parser.parse_args()

    from pyspark import cloudpickle

    from fink_broker.engine.decode import archive_columns, decode
    from fink_broker.engine.session import get_session
    from fink_broker.engine.sinks import write_batch

    tmp = scratch_folder("fink-bench-routes-", args.keep)
    settings = load_settings(None, env={}, overrides=scratch_paths(tmp, REPO))
    adapter = get_adapter(args.survey)
    source = AlertSource(adapter, Path(args.datasim) / args.survey)
    kafka = kafka_like_table(source, args.rows, f"bench_{args.survey}")
    megabytes = sum(len(v) for v in kafka.column("value").to_pylist()) / 1e6
    # small row groups: Spark's reader holds a row group's column chunk in memory
    pq.write_table(kafka, tmp / "kafka.parquet", compression="none", row_group_size=500)
    bare = bare_python(adapter, kafka.column("value").to_pylist(), tmp)
    del kafka

    # Spark's Python workers cannot import the benchmarks: ship the container parser along
    cloudpickle.register_pickle_by_value(benchmarks.stream2raw)
    spark = get_session(settings, app_name="fink-bench-routes")
    tasks = spark.sparkContext.defaultParallelism
    messages = spark.read.parquet(str(tmp / "kafka.parquet")).coalesce(tasks)
    write_batch(spark, archive_columns(decode(messages, adapter), adapter), str(tmp / "raw"), 0, [])
    decoded = spark.read.parquet(str(tmp / "raw")).coalesce(tasks)
    from pyspark.sql.pandas.types import to_arrow_schema

    alert_type = decode(messages, adapter).schema["alert"].dataType
    alert_schema = to_arrow_schema(alert_type)

    def out(r: int, name: str) -> str:
        return str(tmp / f"round{r}_{name}")

    runs: dict[str, Callable[[int], None]] = {
        "Spark: Kafka-like rows -> decode -> Parquet": lambda r: write_batch(
            spark, archive_columns(decode(messages, adapter), adapter), out(r, "decode"), 0, []
        ),
        "Spark: decoded rows -> Parquet": lambda r: write_batch(
            spark, decoded, out(r, "spark"), 0, []
        ),
        "Arrow handoff of decoded rows, nothing written": lambda r: decoded.mapInArrow(
            count_batches, "rows long"
        ).collect(),
        f"Arrow handoff + pyarrow Parquet write ({CODEC})": lambda r: (
            Path(out(r, "pyarrow")).mkdir(),
            decoded.mapInArrow(pyarrow_writer(out(r, "pyarrow")), "rows long").collect(),
        ),
        f"Python: Kafka-like rows -> fastavro -> Arrow -> pyarrow ({CODEC})": lambda r: (
            Path(out(r, "python")).mkdir(),
            messages.select("value", "topic", "partition", "offset", "timestamp")
            .mapInArrow(python_decode_writer(adapter, alert_schema, out(r, "python")), "rows long")
            .collect(),
        ),
    }
    seconds = alternating_rounds(runs, args.rounds)
    print(f"\n{args.survey}: {args.rows:,} alerts, {megabytes:,.0f} MB as messages, local[2]:")
    for name, values in seconds.items():
        median = statistics.median(values[1:])
        listed = ", ".join(f"{v:.1f}" for v in values)
        print(
            f"  {name}: {median:.2f} s, {args.rows / median:,.0f} alerts/s,"
            f" {1e3 * tasks * median / args.rows:.2f} core-ms per alert (wall x {tasks} cores)"
            f" ({listed} s)"
        )
    total = sum(bare.values())
    steps = ", ".join(f"{name} {ms:.3f}" for name, ms in bare.items())
    print(f"  bare Python, 1 core, ms per alert: {steps}; {1e3 / total:,.0f} alerts/s per core")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

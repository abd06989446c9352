"""The one-pass pipeline's pure parts: the shape of the frames it hands on, its command
line, and which checkpoint the lag is read from. No JVM."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pyspark.sql import types as T

from fink_broker.cli.main import settings_from_args
from fink_broker.cli.parser import build_parser
from fink_broker.config import load_settings
from fink_broker.engine.archived_shape import nullable, read_back_order
from fink_broker.lake import Lake
from fink_broker.services.stream_offsets import stream2raw_positions

POINT = T.StructType(
    [T.StructField("jd", T.DoubleType(), False), T.StructField("fid", T.IntegerType(), True)]
)
ALERT = T.StructType(
    [
        T.StructField("candid", T.LongType(), False),
        T.StructField("night", T.StringType(), False),
        T.StructField("prv", T.ArrayType(POINT, containsNull=False), False),
        T.StructField("tags", T.MapType(T.StringType(), POINT, valueContainsNull=False), True),
        T.StructField("kafka_offset", T.LongType(), False),
    ]
)


def all_nullable(kind: T.DataType) -> bool:
    if isinstance(kind, T.StructType):
        return all(f.nullable and all_nullable(f.dataType) for f in kind.fields)
    if isinstance(kind, T.ArrayType):
        return kind.containsNull and all_nullable(kind.elementType)
    if isinstance(kind, T.MapType):
        return kind.valueContainsNull and all_nullable(kind.valueType)
    return True


def test_nullable_makes_every_field_nullable_and_keeps_the_types():
    assert not all_nullable(ALERT)
    shaped = nullable(ALERT)
    assert all_nullable(shaped)
    assert shaped.names == ALERT.names
    assert shaped["prv"].dataType.elementType.names == ["jd", "fid"]
    assert shaped["tags"].dataType.keyType == T.StringType()
    assert nullable(T.LongType()) == T.LongType()
    assert nullable(shaped) == shaped


def test_read_back_order_puts_the_partition_last():
    assert read_back_order(ALERT.names) == ["candid", "prv", "tags", "kafka_offset", "night"]
    plain = [n for n in ALERT.names if n != "night"]
    assert read_back_order(plain) == plain


def test_pipeline_flags_land_in_their_services_sections(tmp_path):
    argv = [
        "start",
        "pipeline",
        "--survey",
        "rubin",
        "--trigger",
        "5 seconds",
        "--modules",
        "xmatch",
        "--failure-policy",
        "fail",
        "--filters",
        "sn_candidates",
        "--no-cutouts",
        "--archive",
        "--root",
        str(tmp_path / "lake"),
    ]
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    assert settings.stream2raw.survey == "rubin"
    assert settings.stream2raw.trigger == "5 seconds"
    assert settings.raw2science.modules == ["xmatch"]
    assert settings.raw2science.failure_policy == "fail"
    assert settings.distribution.filters == ["sn_candidates"]
    assert settings.distribution.cutouts is False
    assert settings.archive.in_pipeline is True
    plain = settings_from_args(build_parser().parse_args(["start", "pipeline"]))
    assert plain.archive.in_pipeline is False and plain.distribution.cutouts is True


def write_offsets(checkpoint, batch: int, offset: int, mtime: float) -> None:
    folder = checkpoint / "offsets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / str(batch)
    path.write_text(f'v1\n{{"batchWatermarkMs":0}}\n{{"alerts":{{"0":{offset}}}}}\n')
    os.utime(path, (mtime, mtime))


def test_the_lag_is_read_from_the_kafka_reader_that_ran_last(tmp_path):
    settings = load_settings(None, env={}, overrides={"paths.root": str(tmp_path)})
    lake = Lake(str(tmp_path), "ztf")
    now = time.time()
    write_offsets(Path(lake.checkpoint("stream2raw")), 7, 700, now - 3600)
    (position,) = stream2raw_positions(settings)
    assert (position.batch, position.offsets) == (7, {"alerts": {0: 700}})
    pipeline = lake.checkpoint("pipeline")
    write_offsets(Path(pipeline), 2, 900, now)
    (position,) = stream2raw_positions(settings)
    assert position.checkpoint == pipeline
    assert (position.batch, position.offsets) == (2, {"alerts": {0: 900}})

#!/usr/bin/env bash
# Start a local Kafka broker, replay the real alerts of DATASIM into it (ZTF as container
# files, Rubin in Confluent wire format), archive them with stream2raw, enrich them with
# raw2science (quality cuts + science modules), publish the ZTF alerts that pass the
# filters to per-filter topics, read a few back, archive both surveys into a local HBase,
# query the REST API, show what runs, stop. The dashboard shows it all live from the start
# (its URL is printed); from a terminal, the script waits for Enter before it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASIM=$(cd "${1:-../shared/datasim}" && pwd)
[ -x .venv/bin/fink ] || bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
CONF=quickstart/fink.toml
mkdir -p quickstart
cd quickstart
fink init -c fink.toml --root data
trap 'fink stop all -c fink.toml >/dev/null 2>&1 || true' EXIT
fink start kafka -c fink.toml
fink start dashboard -c fink.toml   # prints the URL of the live page
for survey in ztf rubin; do
  fink simulator -c fink.toml --survey "$survey" --datasim "$DATASIM/$survey" \
    --topic "quickstart_$survey" --nbatches 3 --interval 1
done
fink start checkstream -c fink.toml --simulator --topic quickstart_rubin --from-beginning
for survey in ztf rubin; do
  fink start stream2raw -c fink.toml --simulator --survey "$survey" --topic "quickstart_$survey" \
    --trigger availableNow --foreground
done
for survey in ztf rubin; do
  fink start raw2science -c fink.toml --survey "$survey" --trigger availableNow --foreground
done
fink start distribution -c fink.toml --simulator --survey ztf --trigger availableNow --foreground
fink filters list -c fink.toml --survey ztf
fink consume -c fink.toml fink_sso_candidates_ztf --from-beginning --max 5 --timeout 15
fink start hbase -c fink.toml
fink init -c fink.toml --hbase
for survey in ztf rubin; do
  fink start archive -c fink.toml --survey "$survey" --trigger availableNow --foreground
done
fink start api -c fink.toml --survey ztf
fink show -c fink.toml
python - <<'PY'
import time, tomllib, httpx2 as httpx
port = tomllib.load(open("fink.toml", "rb"))["api"]["port"]
base = f"http://127.0.0.1:{port}/ztf/api/v1"
for _ in range(120):
    try:
        classes = httpx.get(f"{base}/classes", timeout=5).json()
        break
    except httpx.TransportError:
        time.sleep(0.5)
print("API classes:", classes["Fink classifiers"])
latest = httpx.get(f"{base}/latests", params={"class": "Unknown", "n": 3}).json()
for alert in latest:
    oid = alert["d:objectId"]
    curve = httpx.get(f"{base}/objects", params={"objectId": oid, "withupperlim": True}).json()
    print(f"{oid}: {len(curve)} points (alerts + upper limits), latest mag {alert['d:mag']:.2f}")
rubin = f"http://127.0.0.1:{port}/rubin/api/v1"
for night in httpx.get(f"{rubin}/statistics", params={"date": ""}).json():
    print(f"rubin night {night['f:night']}: {night['f:alerts']} alerts archived")
PY
python - <<'PY'
import pyarrow.dataset as ds
for survey, key in (("ztf", "candid"), ("rubin", "diaSourceId")):
    for stage in ("raw", "science"):
        table = ds.dataset(f"data/{stage}/{survey}", format="parquet", partitioning="hive",
                           exclude_invalid_files=True).to_table(columns=[key, "night"])
        nights = sorted(set(table.column("night").to_pylist()))
        print(f"{survey}: {table.num_rows} alerts in data/{stage}/{survey}, nights {nights}")
PY
echo "config: $CONF; data: quickstart/data; logs: quickstart/.fink/logs"
if [ -t 0 ]; then
  port=$(python -c 'import tomllib; print(tomllib.load(open("fink.toml", "rb"))["dashboard"]["port"])')
  read -r -p "the dashboard is on http://127.0.0.1:$port/ ; press Enter to stop everything " _
fi

#!/usr/bin/env bash
# Measures the WAL against the disk's physical limit in one session: fio's serial fdatasync
# rate (4 KiB writes, the reference), then the WAL benchmark for each engine at 1 and 64
# appenders with 1 KiB records, and prints each run's ratio to fio's rate.
#
#   benches/wal-vs-fio.sh [seconds-per-run]      (default 10)
#
# Needs fio (apt-get install fio). Runs in target/, on the same disk as the build.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v fio >/dev/null || { echo "fio is not installed (apt-get install -y fio)" >&2; exit 2; }
mkdir -p target/fio
fio_iops=$(cd target/fio && fio --name=s --rw=write --bs=4k --size=64m --fdatasync=1 \
  --runtime="$secs" --time_based --output-format=json | python3 -c \
  'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["write"]["iops"]))')
rm -rf target/fio
echo "{\"fio_serial_fdatasync_per_s\":$fio_iops}"
cargo bench --bench wal --quiet -- --appenders 1 --seconds 1 >/dev/null 2>&1 || true
for engine in std uring; do
  for n in 1 64; do
    line=$(cargo bench --bench wal --quiet -- --engine "$engine" --appenders "$n" \
      --record-bytes 1024 --seconds "$secs" 2>/dev/null | tail -n 1)
    python3 - "$line" "$fio_iops" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); fio = float(sys.argv[2])
r["ratio_to_fio"] = round(r["appends_per_s"] / fio, 2)
print(json.dumps(r))
PY
  done
done

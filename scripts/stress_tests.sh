#!/usr/bin/env bash
# Run the test suite N times in a row with two CPU-bound processes beside it, as on a busy shared machine, and
# print a summary: runs, failed runs, which tests failed how often, and the time of each run.
#
#   scripts/stress_tests.sh                 # the whole suite, 10 times
#   scripts/stress_tests.sh -n 3 -k measure # 3 runs of the tests matching `measure`
#   scripts/stress_tests.sh -n 5 -m "not slow" tests/test_run.py
#
# Every argument but `-n N` goes to pytest. pytest's output of each run is kept in a log folder (printed at the
# end). The exit status is 0 only when every run passed. The two busy loops are killed when the script ends,
# however it ends (they are this script's own children, killed by their process ids).
set -uo pipefail
cd "$(dirname "$0")/.."

runs=10
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n) runs="$2"; shift 2 ;;
        -n*) runs="${1#-n}"; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
case "$runs" in
    ''|*[!0-9]*|0) echo "stress_tests.sh: -n wants a whole number of runs >= 1, not '$runs'" >&2; exit 2 ;;
esac

pytest=.venv/bin/pytest
[ -x "$pytest" ] || pytest=pytest
python=.venv/bin/python
[ -x "$python" ] || python=python3

logs=$(mktemp -d "${TMPDIR:-/tmp}/edgebench-stress.XXXXXX")
busy=()
stop_busy() {
    for pid in "${busy[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    busy=()
}
trap stop_busy EXIT
trap 'stop_busy; exit 130' INT
trap 'stop_busy; exit 143' TERM

for _ in 1 2; do
    python3 -c 'while 1: pass' &
    busy+=($!)
done
echo "stress: $runs run(s) of pytest ${args[*]:-(whole suite)} beside 2 busy loops (pids ${busy[*]}); logs in $logs" >&2

failed_runs=0
times=()
for i in $(seq 1 "$runs"); do
    log="$logs/run-$i.log"
    start=$(date +%s.%N)
    "$pytest" -q -p no:cacheprovider "${args[@]}" >"$log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    seconds=$("$python" -c "print(f'{$end - $start:.1f}')")
    times+=("$seconds")
    summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error)' "$log" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')
    if [ "$rc" -ne 0 ]; then
        failed_runs=$((failed_runs + 1))
    fi
    echo "run $i/$runs: rc $rc, ${seconds} s, ${summary:-no summary (see $log)}" >&2
    grep -E '^(FAILED|ERROR) ' "$log" | sed "s/^/    /" >&2
done
stop_busy

echo
echo "stress summary: $runs run(s), $failed_runs failed, beside 2 CPU-bound processes on $(nproc) cores"
"$python" - "$logs" "${times[@]}" <<'EOF'
import collections, pathlib, statistics, sys
logs, times = pathlib.Path(sys.argv[1]), [float(t) for t in sys.argv[2:]]
print(f"time per run: min {min(times):.1f} s, median {statistics.median(times):.1f} s, max {max(times):.1f} s")
failures = collections.Counter()
for log in sorted(logs.glob("run-*.log")):
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            failures[line.split(" - ")[0]] += 1
for test, n in failures.most_common():
    print(f"  {n} x {test}")
if not failures:
    print("no test failed")
print(f"logs: {logs}")
EOF
[ "$failed_runs" -eq 0 ]

#!/usr/bin/env bash
# The fault suite N times in a row, optionally beside LOAD CPU-bound processes (busy Python
# loops), stopping at the first failure. RELIABILITY.md quotes its output. SUITE is the make
# target: test-long (default: the fault and cluster suites in one session, as CI runs them)
# or test-faults.
#   experiments/fault_suite_stability.sh 10        # idle machine
#   LOAD=2 experiments/fault_suite_stability.sh 3  # two CPU-bound processes beside it
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
load=${LOAD:-0}
suite=${SUITE:-test-long}
pids=()
for _ in $(seq 1 "$load"); do
    python3 -c "while True: pass" &
    pids+=($!)
done
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done' EXIT
echo "make $suite x $runs, $load CPU-bound processes beside it, $(nproc) cores"
passed=0
for i in $(seq 1 "$runs"); do
    t0=$(date +%s)
    if make -s "$suite" PYTEST_ARGS="-p no:cacheprovider" > "/tmp/fault-suite-run-$i.log" 2>&1; then
        passed=$((passed + 1))
        echo "run $i: passed in $(( $(date +%s) - t0 )) s: $(grep -E '^[0-9]+ passed' "/tmp/fault-suite-run-$i.log" | tail -1)"
    else
        echo "run $i: FAILED in $(( $(date +%s) - t0 )) s (log: /tmp/fault-suite-run-$i.log)"
        tail -30 "/tmp/fault-suite-run-$i.log"
        break
    fi
done
echo "$passed of $runs passed in a row"
[ "$passed" = "$runs" ]

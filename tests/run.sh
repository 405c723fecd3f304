#!/bin/bash
# tests/run.sh: run ustor's test suites and print one summary line,
# "N passed, N failed", then exit non-zero if anything failed.
#
#   tests/run.sh [--builddir DIR] SUITE...      SUITE: unit | integration | vm
#   TESTS=glob  only run tests whose name matches glob (e.g. TESTS='*thread*')
#
# unit:        every binary under DIR/test/unit (cmocka)
# integration: every executable tests/integration/*.sh and *.py
# vm:          every executable tests/vm/*_test.sh (skipped with a reason when
#              the machine cannot run QEMU)
# Each test's output goes to DIR/test-logs/NAME.log and is printed on failure.
set -u
cd "$(dirname "$0")/.."
builddir=build
suites=()
while [ $# -gt 0 ]; do
	case "$1" in
	--builddir) builddir=$2; shift 2 ;;
	*) suites+=("$1"); shift ;;
	esac
done
[ ${#suites[@]} -eq 0 ] && suites=(unit integration)
builddir=$(cd "$builddir" && pwd)
export USTOR_BUILDDIR=$builddir
logdir=$builddir/test-logs
mkdir -p "$logdir"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
skipped=0
failures=()

run_one() {
	local name=$1; shift
	if [ -n "${TESTS:-}" ]; then
		# shellcheck disable=SC2053
		[[ $name == $TESTS ]] || return 0
	fi
	local log=$logdir/${name//\//_}.log
	local start=$SECONDS
	"$@" >"$log" 2>&1
	local rc=$?
	local t=$((SECONDS - start))
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		printf 'PASS  %-50s %4ss\n' "$name" "$t"
	elif [ $rc -eq 77 ]; then
		skipped=$((skipped + 1))
		printf 'SKIP  %-50s %s\n' "$name" "$(tail -n 1 "$log")"
	else
		failed=$((failed + 1))
		failures+=("$name")
		printf 'FAIL  %-50s %4ss (exit %d)\n' "$name" "$t" "$rc"
		echo "----- $name (last 60 lines of $log) -----"
		tail -n 60 "$log"
		echo "-----"
	fi
}

for suite in "${suites[@]}"; do
	echo "== $suite tests =="
	case "$suite" in
	unit)
		while IFS= read -r t; do
			run_one "unit/${t#"$builddir"/test/unit/}" timeout 600 "$t"
		done < <(find "$builddir/test/unit" -type f -executable 2>/dev/null | sort)
		while IFS= read -r t; do
			run_one "env/${t#"$builddir"/test/env/}" timeout 600 "$t"
		done < <(find "$builddir/test/env" -type f -executable 2>/dev/null | sort)
		;;
	integration)
		for t in tests/integration/*.sh tests/integration/*.py; do
			[ -x "$t" ] || continue
			run_one "integration/$(basename "$t")" timeout 900 "$t"
		done
		;;
	vm)
		for t in tests/vm/*_test.sh; do
			[ -x "$t" ] || continue
			run_one "vm/$(basename "$t")" timeout 1800 "$t"
		done
		;;
	*) echo "unknown suite '$suite'" >&2; exit 2 ;;
	esac
done

echo
if [ $failed -gt 0 ]; then
	echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]

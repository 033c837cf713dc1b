#!/bin/sh
# The test suite, as `make test` runs it (arguments go to pytest). First the calls played in
# real time (marked `slow`): they leave the CPU idle, so TEST_WORKERS of them run at once
# (pytest-xdist; tests/conftest.py keeps a module's tests, and the SIP modules, on one
# worker). Then the rest, which keeps the CPU busy or times the bot (marked `cpu` if also
# slow), one at a time, so that it neither slows a call down nor is slowed. Fails if either
# part fails, or if no test ran at all.
set -u
python=${VENV:-.venv}/bin/python
"$python" -m pytest -ra -m "slow and not cpu" -n "${TEST_WORKERS:-2}" --dist loadgroup "$@"
calls=$?
"$python" -m pytest -ra -m "not slow or cpu" "$@"
rest=$?
# 5: no test selected in that part (a single file was asked for)
if [ $calls -eq 5 ] && [ $rest -eq 5 ]; then exit 5; fi
for code in $calls $rest; do
    if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then exit "$code"; fi
done
exit 0

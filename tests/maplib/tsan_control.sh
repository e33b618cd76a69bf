#!/bin/sh
# tsan_control.sh BINARY: passes only if ThreadSanitizer reports the race
# tsan_control plants, in maplib's node_match (run with the tsan stage's
# TSAN_OPTIONS, so through tests/tsan.supp).
out=$("$1" 2>&1)
rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "WARNING: ThreadSanitizer: data race" &&
  echo "$out" | grep -q node_match; then
  echo "the planted race in node_match was reported: ok"
  exit 0
fi
echo "$out"
echo "tsan_control: exit $rc; expected a ThreadSanitizer report naming node_match" >&2
exit 1

#!/usr/bin/env bash
# Runs examples/train_mlp.c and examples/classify.c and checks what they print.
# usage: test_examples.sh EXAMPLE_TRAIN_MLP EXAMPLE_CLASSIFY
set -u
TRAIN="$1"; CLASSIFY="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

out=$("$TRAIN" "$tmp/mlp.safetensors" 2>"$tmp/err"); rc=$?
if [ $rc -ne 0 ] && grep -q "not found" "$tmp/err"; then
  echo "SKIP: $(cat "$tmp/err")"; exit 0
fi
echo "$out"
check "train_mlp exits 0" "[ $rc -eq 0 ]"
acc=$(echo "$out" | sed -n 's/^test accuracy: \([0-9.]*\)%.*/\1/p')
check "train_mlp prints the test accuracy" "[ -n '$acc' ]"
check "test accuracy $acc% >= 80%" "awk -v a='${acc:-0}' 'BEGIN{exit !(a >= 80)}'"
check "checkpoint written" "[ -s '$tmp/mlp.safetensors' ]"

for idx in 0 1 2; do
  out=$("$CLASSIFY" "$tmp/mlp.safetensors" $idx); rc=$?
  echo "$out"
  check "classify $idx exits 0" "[ $rc -eq 0 ]"
  check "classify $idx prints predicted and true labels" "echo '$out' | grep -Eq '^image $idx: predicted [0-9] \(.*\), true [0-9] \(.*\)'"
done
# image 0 of the test set is an ankle boot (9), which a trained model gets right
out=$("$CLASSIFY" "$tmp/mlp.safetensors" 0)
check "image 0 classified as 9 (Ankle boot)" "echo '$out' | grep -q 'predicted 9 (Ankle boot), true 9'"
"$CLASSIFY" "$tmp/missing.safetensors" >/dev/null 2>"$tmp/err"; rc=$?
check "missing checkpoint -> non-zero exit and message" "[ $rc -ne 0 ] && grep -q 'missing.safetensors' '$tmp/err'"
"$CLASSIFY" "$tmp/mlp.safetensors" 10000 >/dev/null 2>"$tmp/err"; rc=$?
check "index out of range -> exit 2" "[ $rc -eq 2 ]"
[ $fail -eq 0 ] && echo "examples: all checks passed"
exit $fail

#!/usr/bin/env bash
# Command-line tests of nnlab.
# usage: test_cli.sh NNLAB [fast|repro|all]
#   fast:  usage errors (exit 2 + a message naming the flag), --help on every command, list, a tiny
#          train -> save -> eval round trip, JSON output, missing dataset, NaN stop keeping the last checkpoint,
#          progress output on a TTY and off it, an unwritable stdout (/dev/full), --save checked before training
#   repro: the repro pipeline on the baselines' smoke configurations: `nnlab repro mlp cnn --smoke` (two experiments
#          at once), the table, ledger.json with the v2 fields (3 seeds, parts, controls rejected), report.html, logs
set -u
NNLAB="$1"; MODE="${2:-all}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0; n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
have_py=0; command -v python3 >/dev/null 2>&1 && have_py=1
# json_get FILE_OR_STRING EXPR: evaluates a Python expression on the parsed JSON `j`
json_get() { python3 -c "import json,sys; j=json.loads(sys.argv[1]); print($2)" "$1"; }

# expect_usage "description" args...: exit status 2 and a message naming $NEEDLE on stderr
expect_usage() {
  local what="$1"; shift
  "$NNLAB" "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  check "$what -> exit 2 (got $rc)" "[ $rc -eq 2 ]"
  check "$what -> message mentions '$NEEDLE'" "grep -qF -- '$NEEDLE' '$tmp/err'"
}

data_ok=1
NL_NUM_THREADS=2 "$NNLAB" eval --help >/dev/null 2>&1 || true
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || [ -n "${NL_DATA_DIR:-}" ] || data_ok=0

if [ "$MODE" = fast ] || [ "$MODE" = all ]; then
  # ---- help ----
  "$NNLAB" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "no arguments -> exit 2 with the command list" "[ $rc -eq 2 ] && grep -q 'usage: nnlab' '$tmp/err'"
  for args in "--help" "-h" "help" "help train" "help eval" "help list" "help repro" "--version"; do
    "$NNLAB" $args >"$tmp/out" 2>&1; rc=$?
    check "nnlab $args -> exit 0" "[ $rc -eq 0 ] && [ -s '$tmp/out' ]"
  done
  # the core commands and every registered method command (listed by nnlab --help)
  method_cmds=$("$NNLAB" --help | sed -n '/^method commands/,/^older/p' | sed -n 's/^  \([a-z0-9_-]*\) .*/\1/p')
  lib_cmds=$("$NNLAB" --help | sed -n '/^library commands/,/^$/p' | sed -n 's/^  \([a-z0-9_-]*\) .*/\1/p')
  n_method_cmds=$(echo $method_cmds | wc -w)
  check "nnlab --help lists the method commands ($n_method_cmds)" "[ $n_method_cmds -ge 8 ]"
  for cmd in train eval list repro $lib_cmds $method_cmds; do
    "$NNLAB" $cmd --help >"$tmp/out" 2>&1; rc=$?
    check "nnlab $cmd --help -> exit 0 and usage" "[ $rc -eq 0 ] && grep -q 'usage: nnlab $cmd' '$tmp/out'"
  done
  # the older spellings are aliases of the method commands
  for pair in widedeep:wide-deep kernel:nngp-ntk stp:student-t-process rope:giraffe; do
    "$NNLAB" ${pair%%:*} --help >"$tmp/out" 2>&1; rc=$?
    check "alias nnlab ${pair%%:*} -> nnlab ${pair##*:}" "[ $rc -eq 0 ] && grep -q 'usage: nnlab ${pair##*:}' '$tmp/out'"
  done
  NEEDLE="nnlab repro baselines" expect_usage "a method without a command of its own" baselines
  "$NNLAB" train mlp --epochs 3 --help >"$tmp/out" 2>&1; rc=$?
  check "--help after other flags -> exit 0" "[ $rc -eq 0 ] && grep -q 'usage: nnlab train' '$tmp/out'"

  # ---- report --markdown ----
  printf '{"mode":"quick","entries":[{"method":"x","verdict":"pass","commit":"abc1234","machine":"m","seconds":1.5,"seeds":3,"measured":"a | b","parts":[{"name":"p1","rule":"r","measured":"m","verdict":"pass"}],"controls":[{"name":"c1","kind":"broken","what":"w","measured":"m","verdict":"fail"}],"metrics":{"acc":0.5}}]}' >"$tmp/l.json"
  "$NNLAB" report --markdown "$tmp/l.json" >"$tmp/out" 2>&1; rc=$?
  check "report --markdown -> exit 0 with parts, controls, commit" "[ $rc -eq 0 ] && grep -q 'abc1234' '$tmp/out' && grep -q '| p1 | r | m | pass |' '$tmp/out' && grep -q 'rejected' '$tmp/out' && grep -q 'a \\\\| b' '$tmp/out'"
  "$NNLAB" report --markdown "$tmp/l.json" nosuch >"$tmp/out" 2>&1; rc=$?
  check "report of a missing entry -> exit 1" "[ $rc -eq 1 ]"
  echo 'not json' >"$tmp/bad.json"
  "$NNLAB" report --markdown "$tmp/bad.json" >"$tmp/out" 2>&1; rc=$?
  check "report of a malformed ledger -> exit 1" "[ $rc -eq 1 ] && grep -q 'not a ledger' '$tmp/out'"
  NEEDLE=--markdown expect_usage "report without --markdown" report
  # ---- usage errors ----
  NEEDLE=frobnicate expect_usage "unknown command" frobnicate
  NEEDLE="mlp|cnn" expect_usage "train without a model" train
  NEEDLE=resnet expect_usage "train unknown model" train resnet
  NEEDLE=--epochs expect_usage "--epochs -1" train mlp --epochs -1
  NEEDLE=--epochs expect_usage "--epochs 0" train mlp --epochs 0
  NEEDLE=--epochs expect_usage "--epochs 1.5" train mlp --epochs 1.5
  NEEDLE=--epochs expect_usage "--epochs 10abc" train mlp --epochs 10abc
  NEEDLE=--epochs expect_usage "--epochs 99999999999999999999" train mlp --epochs 99999999999999999999
  NEEDLE=--epochs expect_usage "--epochs without a value" train mlp --epochs
  NEEDLE=--epochs expect_usage "--epochs followed by a flag" train mlp --epochs --json
  NEEDLE=--lr expect_usage "--lr abc" train mlp --lr abc
  NEEDLE=--lr expect_usage "--lr -1" train mlp --lr -1
  NEEDLE=--lr expect_usage "--lr 0" train mlp --lr 0
  NEEDLE=--lr expect_usage "--lr nan" train mlp --lr nan
  NEEDLE=--lr expect_usage "--lr inf" train mlp --lr inf
  NEEDLE=--lr expect_usage "--lr=" train mlp --lr=
  NEEDLE=--batch expect_usage "--batch 0" train mlp --batch 0
  NEEDLE=--batch expect_usage "--batch=-5" train mlp --batch=-5
  NEEDLE=--threads expect_usage "--threads 0" train mlp --threads 0
  NEEDLE=--seed expect_usage "--seed -3" train mlp --seed -3
  NEEDLE=--dropout expect_usage "--dropout 1" train mlp --dropout 1
  NEEDLE=--valid expect_usage "--valid -1" train mlp --valid -1
  NEEDLE=--limit expect_usage "--limit 0" train mlp --limit 0
  NEEDLE=--bogus expect_usage "unknown flag" train mlp --bogus 3
  NEEDLE=-x expect_usage "single-dash flag" train mlp -x
  NEEDLE=--json expect_usage "--json=1" train mlp --json=1
  NEEDLE=cifar expect_usage "--data cifar" train mlp --data cifar
  NEEDLE=rmsprop expect_usage "--optim rmsprop" train mlp --optim rmsprop
  NEEDLE=--sched expect_usage "--sched step" train mlp --sched step
  NEEDLE=--act expect_usage "--act swish" train mlp --act swish
  NEEDLE=--hidden expect_usage "--hidden 256,,10" train mlp --hidden 256,,10
  NEEDLE=--hidden expect_usage "--hidden 0" train mlp --hidden 0
  NEEDLE=--hidden expect_usage "--hidden for a CNN" train cnn --hidden 64
  NEEDLE=--channels expect_usage "--channels for an MLP" train mlp --channels 8
  NEEDLE=--channels expect_usage "--channels 8,x" train cnn --channels 8,x
  NEEDLE=--patience expect_usage "--patience without --valid" train mlp --patience 2
  NEEDLE=--momentum expect_usage "--momentum with adam" train mlp --momentum 0.9
  NEEDLE=--valid expect_usage "--valid 60000" train mlp --valid 60000
  NEEDLE=extra expect_usage "two models" train mlp extra
  NEEDLE=--load expect_usage "eval without --load" eval
  NEEDLE=--split expect_usage "eval --split dev" eval --load x --split dev
  NEEDLE=--limit expect_usage "eval --limit abc" eval --load x --limit abc
  NEEDLE=bogus expect_usage "list with an argument" list bogus
  NEEDLE=nosuchmethod expect_usage "repro unknown method" repro nosuchmethod
  NEEDLE=--smoke expect_usage "repro --quick --full" repro --quick --full
  NEEDLE=--threads expect_usage "repro --threads abc" repro --threads abc
  NEEDLE=--out expect_usage "repro --out without a value" repro --out

  # ---- list ----
  "$NNLAB" list >"$tmp/out" 2>&1; rc=$?
  check "list -> exit 0 with mlp and cnn and their claims" "[ $rc -eq 0 ] && grep -q '^mlp ' '$tmp/out' && grep -q '^cnn ' '$tmp/out' && grep -q 'claim:' '$tmp/out'"
  "$NNLAB" list --json >"$tmp/out" 2>&1; rc=$?
  check "list --json -> exit 0" "[ $rc -eq 0 ]"
  if [ $have_py = 1 ]; then
    check "list --json is valid JSON with method/paper/claim/status" \
      "python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); e=j[\"experiments\"]; assert len(e) >= 2 and all(k in x for x in e for k in (\"method\",\"paper\",\"claim\",\"status\"))' '$tmp/out'"
  fi

  # ---- lm: usage errors and a tiny Lines (haystack) round trip (no dataset needed) ----
  NEEDLE=--rope expect_usage "lm train unknown rope variant" lm train --task lines --rope spiral --steps 1
  NEEDLE=--haystack expect_usage "lm train --haystack on text" lm train --haystack --steps 1
  NEEDLE=--task expect_usage "lm train unknown task" lm train --task poems --steps 1
  NL_NUM_THREADS=1 "$NNLAB" lm train --task lines --haystack --context 48 --layers 1 --d-model 16 --heads 2 --steps 3 \
    --batch 2 --quiet --save "$tmp/lines.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "lm train --task lines --haystack -> exit 0 and a checkpoint" "[ $rc -eq 0 ] && [ -s '$tmp/lines.st' ]"
  NL_NUM_THREADS=1 "$NNLAB" lm eval --load "$tmp/lines.st" --task lines --haystack --context 96 --samples 3 >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "lm eval beyond the training context without --extrapolate -> exit 1" "[ $rc -eq 1 ] && grep -q 'extrapolate' '$tmp/err'"
  NL_NUM_THREADS=1 "$NNLAB" lm eval --load "$tmp/lines.st" --task lines --haystack --context 96 --extrapolate --samples 3 --json >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "lm eval --haystack --extrapolate -> exit 0 and an accuracy" "[ $rc -eq 0 ] && grep -q '\"accuracy\"' '$tmp/out'"
  # the method commands over the LM: lm-infinite evaluates past the context with no --extrapolate; powernorm trains
  NL_NUM_THREADS=1 "$NNLAB" lm-infinite eval --load "$tmp/lines.st" --task lines --haystack --context 96 --samples 3 --json >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "lm-infinite eval beyond the training context -> exit 0 and an accuracy" "[ $rc -eq 0 ] && grep -q '\"accuracy\"' '$tmp/out'"
  NL_NUM_THREADS=1 "$NNLAB" powernorm train --task lines --haystack --context 48 --layers 1 --d-model 16 --heads 2 --steps 3 \
    --quiet --save "$tmp/pn.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "powernorm train -> exit 0 and a PowerNorm checkpoint" "[ $rc -eq 0 ] && grep -aq 'running_phi' '$tmp/pn.st'"
  NEEDLE=subcommand expect_usage "powernorm unknown subcommand" powernorm fit
  NEEDLE=--context expect_usage "lm eval --haystack with a context too short" lm eval --load "$tmp/lines.st" --task lines --haystack --context 20
  : >"$tmp/empty.txt"
  NL_NUM_THREADS=1 "$NNLAB" lm train --corpus "$tmp/empty.txt" --steps 1 --quiet >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "lm train on an empty corpus -> exit 1 naming it" "[ $rc -eq 1 ] && grep -q 'empty' '$tmp/err'"
  NL_NUM_THREADS=1 "$NNLAB" lm eval --load "$tmp/lines.st" --corpus "$tmp/empty.txt" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "lm eval of a lines model on text -> non-zero with a message" "[ $rc -ne 0 ] && grep -q 'vocab' '$tmp/err'"
  # ---- lm: a tiny byte-level text model; generate; the corpus and --save checked before training ----
  head -c 3000 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 3000 >"$tmp/small.txt"
  NL_NUM_THREADS=1 "$NNLAB" lm train --corpus "$tmp/small.txt" --context 16 --layers 1 --d-model 16 --heads 2 --steps 2 \
    --batch 2 --quiet --save "$tmp/text.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "lm train on a small text corpus -> exit 0 and a checkpoint" "[ $rc -eq 0 ] && [ -s '$tmp/text.st' ]"
  printf 'in the beginning' >"$tmp/tiny.txt"
  NL_NUM_THREADS=1 "$NNLAB" lm train --corpus "$tmp/tiny.txt" --context 48 --layers 1 --d-model 16 --heads 2 --steps 1000000 \
    >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "lm train on a corpus shorter than one window -> exit 1 before training, naming both lengths" \
    "[ $rc -eq 1 ] && grep -q 'too short' '$tmp/err' && grep -q '16 bytes' '$tmp/err' && grep -q 'context of 48' '$tmp/err' && ! grep -q 'step ' '$tmp/err'"
  NL_NUM_THREADS=1 "$NNLAB" lm train --corpus "$tmp/small.txt" --context 16 --layers 1 --d-model 16 --heads 2 --steps 1000000 \
    --quiet --save "$tmp/nodir/lm.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "lm train --save into a missing directory -> exit 1 at the start" "[ $rc -eq 1 ] && grep -q 'nodir/lm.st' '$tmp/err' && grep -q 'does not exist' '$tmp/err'"
  NL_NUM_THREADS=1 "$NNLAB" lm generate --load "$tmp/lines.st" --prompt hi >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "lm generate with a lines model -> exit 2 naming its real vocab" "[ $rc -eq 2 ] && grep -Eq 'vocab [1-9][0-9]*' '$tmp/err' && ! grep -q 'vocab 0' '$tmp/err'"
  NL_NUM_THREADS=1 "$NNLAB" lm generate --load "$tmp/text.st" --prompt "$(printf 'ab\xff\xc3(\xed\xa0\x80z')" --tokens 60 \
    --temperature 2 --top-k 0 --extrapolate --json >"$tmp/gen.json" 2>"$tmp/err"; rc=$?
  check "lm generate --json with invalid UTF-8 -> exit 0" "[ $rc -eq 0 ]"
  if [ $have_py = 1 ]; then
    check "lm generate --json is valid UTF-8 JSON, invalid bytes replaced by U+FFFD" \
      "python3 -c 'import json,sys; j=json.loads(open(sys.argv[1],\"rb\").read().decode(\"utf-8\")); assert j[\"prompt\"]==\"ab\ufffd\ufffd(\ufffd\ufffd\ufffdz\", ascii(j[\"prompt\"]); assert isinstance(j[\"text\"], str)' '$tmp/gen.json'"
  fi
  NL_NUM_THREADS=1 "$NNLAB" pfn train --steps 1000000 --out "$tmp/nodir/p.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "pfn train --out into a missing directory -> exit 1 at the start" "[ $rc -eq 1 ] && grep -q 'nodir/p.st' '$tmp/err'"
  "$NNLAB" train mlp --epochs 1 --save "$tmp/nodir/m.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "train --save into a missing directory -> exit 1 at the start" "[ $rc -eq 1 ] && grep -q 'nodir/m.st' '$tmp/err' && ! grep -q 'epoch' '$tmp/err'"
  : >"$tmp/afile"
  "$NNLAB" train mlp --epochs 1 --save "$tmp/afile/m.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "train --save under a regular file -> exit 1 at the start" "[ $rc -eq 1 ] && grep -q 'afile/m.st' '$tmp/err'"
  "$NNLAB" train mlp --epochs 1 --save "$tmp" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "train --save naming a directory -> exit 1 at the start" "[ $rc -eq 1 ] && grep -q 'is a directory' '$tmp/err'"

  # ---- graph: usage errors, a karate run (data written in the code), a missing WordNet file ----
  NEEDLE=--layers expect_usage "graph train --layers 0" graph train --layers 0
  NEEDLE=resnet expect_usage "graph train unknown model" graph train --model resnet
  NEEDLE=cora expect_usage "graph train unknown data set" graph train --data cora
  out=$("$NNLAB" graph train --data karate --model gcn --epochs 30 --threads 1 2>"$tmp/err"); rc=$?
  check "graph train karate gcn -> exit 0 and a test accuracy (got $rc)" "[ $rc -eq 0 ] && echo \"\$out\" | grep -qi 'test'"
  "$NNLAB" graph train --data wordnet --path "$tmp/no-such-data.noun" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "graph train with a missing WordNet file -> exit 1 naming the file (got $rc)" "[ $rc -eq 1 ] && grep -q 'no-such-data.noun' '$tmp/err'"

  # ---- an unwritable stdout: exit 1 with a message, never a silent exit 0 ----
  if [ -w /dev/full ]; then
    full_check() { # description, args...: exit 1 and "cannot write output" on stderr
      local what="$1"; shift
      "$@" >/dev/full 2>"$tmp/err"; local rc=$?
      check "$what > /dev/full -> exit 1 with a message (got $rc)" "[ $rc -eq 1 ] && grep -q 'cannot write output: No space left on device' '$tmp/err'"
    }
    full_check "nnlab list" "$NNLAB" list
    full_check "nnlab list --json" "$NNLAB" list --json
    full_check "nnlab --help" "$NNLAB" --help
    full_check "nnlab --version" "$NNLAB" --version
    for cmd in train eval list repro $lib_cmds $method_cmds; do full_check "nnlab $cmd --help" "$NNLAB" $cmd --help; done
    full_check "nnlab lm generate" env NL_NUM_THREADS=1 "$NNLAB" lm generate --load "$tmp/text.st" --prompt ab --tokens 8
    full_check "nnlab lm generate --json" env NL_NUM_THREADS=1 "$NNLAB" lm generate --load "$tmp/text.st" --prompt ab --tokens 8 --json
    full_check "nnlab lm eval --json" env NL_NUM_THREADS=1 "$NNLAB" lm eval --load "$tmp/lines.st" --task lines --samples 2 --json
    full_check "nnlab lines-task method command" env NL_NUM_THREADS=1 "$NNLAB" lm-infinite eval --load "$tmp/lines.st" --task lines --haystack --context 96 --samples 2 --json
    printf '0\n1\n' >"$tmp/x.csv"
    full_check "nnlab nngp-ntk (CSV on stdout)" env NL_NUM_THREADS=1 "$NNLAB" nngp-ntk nngp --x "$tmp/x.csv"
  else
    echo "skip unwritable-stdout checks: /dev/full is absent"
  fi

  # ---- lm: resumable training (2 + 2 steps == 4, byte-identical checkpoints), on a small text file ----
  for i in $(seq 60); do echo "the cat sat on the mat $i"; done >"$tmp/cat.txt"
  lt="lm train --corpus $tmp/cat.txt --context 16 --layers 1 --d-model 16 --heads 2 --d-ff 32 --batch 2 --warmup 2 --steps 4 --threads 1 --quiet"
  NEEDLE=--save-every expect_usage "lm train --save-every without --save" $lt --save-every 2
  NEEDLE=--resume expect_usage "lm train --resume on the lines task" lm train --task lines --steps 1 --resume "$tmp/lines.st"
  "$NNLAB" $lt --stop-after 2 --save "$tmp/l2.st" >"$tmp/out" 2>"$tmp/err" && \
    "$NNLAB" $lt --resume "$tmp/l2.st" --save "$tmp/l22.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
  "$NNLAB" $lt --save "$tmp/l4.st" --save-every 1 >"$tmp/out" 2>"$tmp/err"; rc4=$?
  check "lm train --stop-after 2 then --resume, and 4 steps -> exit 0" "[ $rc -eq 0 ] && [ $rc4 -eq 0 ]"
  check "lm 2 + 2 steps resumed give the same checkpoint as 4" "cmp -s '$tmp/l22.st' '$tmp/l4.st'"
  "$NNLAB" ${lt/--layers 1/--layers 2} --resume "$tmp/l2.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "lm train --resume from another architecture -> exit 1 with a message" "[ $rc -eq 1 ] && grep -q 'architecture mismatch' '$tmp/err'"
  # ---- hostile checkpoints: refused with a message and exit 1, quickly, never a signal ----
  # mkst FILE HEADER: a safetensors file with that JSON header; the data section is read from stdin
  mkst() { printf '%s' "$2" >"$tmp/h"; local len; len=$(stat -c %s "$tmp/h")
           { printf "\\x$(printf %02x $((len & 255)))\\x$(printf %02x $((len >> 8)))\\x00\\x00\\x00\\x00\\x00\\x00"; cat "$tmp/h"; cat; } >"$1"; }
  meta_mlp() { printf '"__metadata__":{"nnlab.model":"mlp","nnlab.format":"1","nnlab.dtype":"f32","nnlab.classes":"%s","nnlab.activation":"relu","nnlab.dropout":"0","nnlab.input_mean":"0","nnlab.input_std":"1","nnlab.sizes":"%s"}' "${2:-2}" "$1"; }
  printf '\x00\x00\x80\x3f\x00\x00\x00\x40' | mkst "$tmp/huge.st" "{\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},$(meta_mlp 16777216,16777216,16777216,2)}"
  t0=$(date +%s%N); "$NNLAB" eval --load "$tmp/huge.st" >"$tmp/out" 2>"$tmp/err"; rc=$?; ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  check "eval of a $(stat -c %s "$tmp/huge.st")-byte file naming a 2^48-parameter MLP -> exit 1 in ${ms} ms" "[ $rc -eq 1 ] && [ $ms -lt 5000 ] && grep -q 'fc1.weight' '$tmp/err'"
  printf '\x00\x00\x80\x3f\x00\x00\x00\x40' | mkst "$tmp/neg.st" "{\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},$(meta_mlp -2,2)}"
  "$NNLAB" eval --load "$tmp/neg.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "eval of a checkpoint with a negative size -> exit 1 naming nnlab.sizes" "[ $rc -eq 1 ] && grep -q 'nnlab.sizes' '$tmp/err'"
  two='"fc1.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"fc1.bias":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}'
  { printf '\x00\x00\xc0\x7f'; head -c 20 /dev/zero; } | mkst "$tmp/nan.st" "{$two,$(meta_mlp 2,2)}"
  "$NNLAB" eval --load "$tmp/nan.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "eval of a checkpoint with a NaN weight -> exit 1 naming the tensor" "[ $rc -eq 1 ] && grep -q \"fc1.weight' holds a non-finite\" '$tmp/err'"
  { printf '\x00\x00\x80\x7f'; head -c 20 /dev/zero; } | mkst "$tmp/inf.st" "{$two,$(meta_mlp 2,2)}"
  "$NNLAB" eval --load "$tmp/inf.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "eval of a checkpoint with an Inf weight -> exit 1" "[ $rc -eq 1 ] && grep -q 'non-finite' '$tmp/err'"
  head -c 24 /dev/zero | mkst "$tmp/shape.st" "{$two,$(meta_mlp 2,3,2)}"
  "$NNLAB" eval --load "$tmp/shape.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "eval of a checkpoint whose tensors do not match its metadata -> exit 1" "[ $rc -eq 1 ] && grep -q 'do not match the architecture' '$tmp/err'"
  if [ $have_py = 1 ] && [ -s "$tmp/lines.st" ]; then
    # st_edit IN OUT KEY VALUE [TENSOR]: a copy with one metadata value replaced and (optionally) a tensor's first value NaN
    st_edit() { python3 - "$@" <<'PY'
import json, struct, sys
src, dst, key, val = sys.argv[1:5]
b = open(src, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); data = bytearray(b[8 + n:])
if key != "-": h["__metadata__"][key] = val
if len(sys.argv) > 5: o = h[sys.argv[5]]["data_offsets"][0]; data[o:o + 4] = struct.pack("<f", float("nan"))
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + bytes(data))
PY
    }
    st_edit "$tmp/lines.st" "$tmp/lmhuge.st" nnlab.d_model 65536
    t0=$(date +%s%N); "$NNLAB" lm eval --load "$tmp/lmhuge.st" --task lines --samples 1 >"$tmp/out" 2>"$tmp/err"; rc=$?; ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    check "lm eval of a checkpoint naming d_model 65536 -> exit 1 in ${ms} ms" "[ $rc -eq 1 ] && [ $ms -lt 5000 ] && [ -s '$tmp/err' ]"
    st_edit "$tmp/lines.st" "$tmp/lmbig.st" nnlab.d_model 2147483647
    "$NNLAB" lm eval --load "$tmp/lmbig.st" --task lines --samples 1 >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "lm eval of a checkpoint with d_model 2^31-1 -> exit 1 (architecture invalid)" "[ $rc -eq 1 ] && grep -q 'd_model' '$tmp/err'"
    st_edit "$tmp/lines.st" "$tmp/lmnan.st" - - tok_emb.weight
    "$NNLAB" lm eval --load "$tmp/lmnan.st" --task lines --samples 1 >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "lm eval of a checkpoint with a NaN weight -> exit 1 naming the tensor" "[ $rc -eq 1 ] && grep -q 'tok_emb.weight' '$tmp/err'"
    "$NNLAB" lm eval --load "$tmp/lmnan.st" --task lines --haystack --samples 2 --allow-nonfinite >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "lm eval --allow-nonfinite of a NaN model -> loads, then exit 1 on the NaN logits" "[ $rc -eq 1 ] && grep -q 'not finite' '$tmp/err'"
    head -c 30000 /dev/urandom | base64 >"$tmp/corpus.txt"
    NL_NUM_THREADS=1 "$NNLAB" lm train --corpus "$tmp/corpus.txt" --context 16 --layers 1 --d-model 8 --heads 2 --steps 1 --quiet --save "$tmp/text.st" >"$tmp/out" 2>"$tmp/err"
    st_edit "$tmp/text.st" "$tmp/textnan.st" - - tok_emb.weight
    "$NNLAB" lm generate --load "$tmp/textnan.st" --prompt hi --tokens 3 >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "lm generate of a NaN checkpoint -> exit 1 naming the tensor" "[ $rc -eq 1 ] && grep -q 'tok_emb.weight' '$tmp/err'"
    "$NNLAB" lm generate --load "$tmp/textnan.st" --prompt hi --tokens 3 --allow-nonfinite >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "lm generate --allow-nonfinite with NaN logits -> exit 1 with a message" "[ $rc -eq 1 ] && grep -q 'not finite' '$tmp/err'"
    "$NNLAB" lm eval --load "$tmp/textnan.st" --corpus "$tmp/corpus.txt" --allow-nonfinite >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "lm eval --allow-nonfinite with a NaN perplexity -> exit 1 with a message" "[ $rc -eq 1 ] && grep -q 'not finite' '$tmp/err'"
  fi
  if [ $data_ok = 1 ]; then
    # ---- missing dataset: a clear error naming the package, exit 1 ----
    NL_DATA_DIR="$tmp/nowhere" "$NNLAB" train mlp --epochs 1 --quiet >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "missing dataset -> exit 1" "[ $rc -eq 1 ]"
    check "missing dataset -> message names the package" "grep -q 'dataset-fashion-mnist' '$tmp/err'"

    # ---- tiny train -> save -> eval ----
    "$NNLAB" train mlp --limit 3000 --epochs 2 --hidden 64 --lr 2e-3 --seed 3 --json --quiet --save "$tmp/m.safetensors" >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "train --json -> exit 0" "[ $rc -eq 0 ]"
    check "train --json prints exactly one line" "[ \$(wc -l < '$tmp/out') -eq 1 ]"
    line=$(cat "$tmp/out")
    check "checkpoint saved" "[ -s '$tmp/m.safetensors' ]"
    if [ $have_py = 1 ]; then
      acc=$(json_get "$line" 'j["test_accuracy"]')
      check "JSON test_accuracy $acc > 0.75" "python3 -c 'import sys; assert float(sys.argv[1]) > 0.75' '$acc'"
      fields=$(json_get "$line" '" ".join(map(str, (len(j["epoch_seconds"]), j["samples_per_sec"] > 0, j["status"], j["n_train"], j["epochs"], j["checkpoint"] is not None)))')
      check "JSON has epoch_seconds (2 entries), samples_per_sec, status ok, n_train, checkpoint ($fields)" "[ '$fields' = '2 True ok 3000 2 True' ]"
      "$NNLAB" eval --load "$tmp/m.safetensors" --json >"$tmp/out" 2>"$tmp/err"; rc=$?
      check "eval --json -> exit 0" "[ $rc -eq 0 ]"
      eacc=$(json_get "$(cat "$tmp/out")" 'j["accuracy"]')
      if [ -w /dev/full ]; then
        "$NNLAB" eval --load "$tmp/m.safetensors" --limit 200 --json >/dev/full 2>"$tmp/err"; rc=$?
        check "eval --json > /dev/full -> exit 1 with a message" "[ $rc -eq 1 ] && grep -q 'cannot write output' '$tmp/err'"
        "$NNLAB" train mlp --limit 500 --epochs 1 --hidden 16 --json --quiet >/dev/full 2>"$tmp/err"; rc=$?
        check "train --json > /dev/full -> exit 1 with a message" "[ $rc -eq 1 ] && grep -q 'cannot write output' '$tmp/err'"
      fi
      check "eval accuracy $eacc equals train's test accuracy $acc" "python3 -c 'import sys; assert abs(float(sys.argv[1]) - float(sys.argv[2])) < 1e-9' '$eacc' '$acc'"
    else
      check "JSON has test_accuracy, epoch_seconds, samples_per_sec" "echo '$line' | grep -q '\"test_accuracy\"' && echo '$line' | grep -q '\"epoch_seconds\":\[' && echo '$line' | grep -q '\"samples_per_sec\"'"
    fi
    "$NNLAB" eval --load "$tmp/m.safetensors" --limit 500 >"$tmp/out" 2>&1; rc=$?
    check "eval (text) -> exit 0 and accuracy" "[ $rc -eq 0 ] && grep -q 'accuracy' '$tmp/out' && grep -q '500 examples' '$tmp/out'"
    "$NNLAB" eval --load "$tmp/nonexistent.safetensors" >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "eval of a missing file -> exit 1 and message" "[ $rc -eq 1 ] && grep -q 'nonexistent.safetensors' '$tmp/err'"
    # a safetensors file without the nnlab architecture metadata
    hdr='{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    printf '%s' "$hdr" >"$tmp/h"; len=$(stat -c %s "$tmp/h")
    { printf "\\x$(printf %02x $len)\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; cat "$tmp/h"; printf '\x00\x00\x80\x3f\x00\x00\x00\x40'; } >"$tmp/other.safetensors"
    "$NNLAB" eval --load "$tmp/other.safetensors" >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "eval of a foreign checkpoint -> exit 1 and a clear message" "[ $rc -eq 1 ] && grep -q 'not an nnlab model checkpoint' '$tmp/err'"
    # a NaN bias, loaded on purpose: the NaN loss exits 1 instead of printing "loss nan"
    { head -c 31360 /dev/zero; printf '\x00\x00\xc0\x7f'; head -c 36 /dev/zero; } | mkst "$tmp/nan784.st" \
      "{\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[10,784],\"data_offsets\":[0,31360]},\"fc1.bias\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[31360,31400]},$(meta_mlp 784,10 10)}"
    "$NNLAB" eval --load "$tmp/nan784.st" --limit 100 --allow-nonfinite >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "eval --allow-nonfinite with a NaN loss -> exit 1 with a message" "[ $rc -eq 1 ] && grep -q 'came out' '$tmp/err'"
    printf 'garbage' >"$tmp/bad.safetensors"
    "$NNLAB" eval --load "$tmp/bad.safetensors" >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "eval of a corrupt file -> exit 1" "[ $rc -eq 1 ] && [ -s '$tmp/err' ]"

    # ---- resumable training: 2 + 2 epochs resumed == 4 at once (byte-identical checkpoints), --save-every ----
    tr="train mlp --limit 600 --batch 64 --hidden 32 --seed 4 --threads 1 --quiet"
    NEEDLE=--save-every expect_usage "train --save-every without --save" $tr --epochs 1 --save-every 3
    "$NNLAB" $tr --epochs 2 --save "$tmp/r2.st" >"$tmp/out" 2>"$tmp/err" && \
      "$NNLAB" $tr --epochs 4 --resume "$tmp/r2.st" --save "$tmp/r22.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
    "$NNLAB" $tr --epochs 4 --save "$tmp/r4.st" --save-every 7 >"$tmp/out" 2>"$tmp/err"; rc4=$?
    check "train --resume (2 + 2 epochs) and 4 epochs -> exit 0" "[ $rc -eq 0 ] && [ $rc4 -eq 0 ]"
    if [ $have_py = 1 ]; then # same tensors (weights, optimizer moments) and step; the schedule horizon key differs
      check "2 + 2 epochs resumed give bit-identical weights and optimizer state to 4" "python3 -c '
import json, struct, sys
def rd(p):
    b = open(p, \"rb\").read(); n = struct.unpack(\"<Q\", b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: d[v[\"data_offsets\"][0]:v[\"data_offsets\"][1]] for k, v in h.items() if k != \"__metadata__\"}, h[\"__metadata__\"]
(a, ma), (b, mb) = rd(sys.argv[1]), rd(sys.argv[2])
assert a == b and \"train.optim.m\" in a and ma[\"train.step\"] == mb[\"train.step\"] == \"40\"
' '$tmp/r22.st' '$tmp/r4.st'"
    fi
    "$NNLAB" eval --load "$tmp/r22.st" --limit 200 >"$tmp/out" 2>&1; rc=$?
    check "a resumable checkpoint loads in eval -> exit 0" "[ $rc -eq 0 ] && grep -q 'accuracy' '$tmp/out'"
    "$NNLAB" $tr --epochs 4 --resume "$tmp/m.safetensors" >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "train --resume from another architecture -> exit 1 with a message" "[ $rc -eq 1 ] && grep -q 'architecture' '$tmp/err'"
    "$NNLAB" train cnn --limit 600 --batch 64 --epochs 1 --quiet --resume "$tmp/r2.st" >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "train cnn --resume an mlp checkpoint -> exit 1 naming both" "[ $rc -eq 1 ] && grep -q 'mlp' '$tmp/err' && grep -q 'cnn' '$tmp/err'"

    # ---- NaN: stop with the step named, exit 1, the previous checkpoint survives ----
    cp "$tmp/m.safetensors" "$tmp/keep.safetensors"
    "$NNLAB" train mlp --limit 2000 --epochs 2 --hidden 64 --optim sgd --lr 1e30 --quiet --save "$tmp/m.safetensors" >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "lr 1e30 -> exit 1" "[ $rc -eq 1 ]"
    check "lr 1e30 -> message names the step and what is not finite" "grep -Eq 'step [0-9]+: (loss is (NaN|\+Inf|-Inf)|gradient of [a-z0-9.]+ is not finite|[a-z0-9.]+ is not finite)' '$tmp/err'"
    check "the existing checkpoint is not overwritten" "cmp -s '$tmp/m.safetensors' '$tmp/keep.safetensors'"
    "$NNLAB" eval --load "$tmp/m.safetensors" --limit 100 >/dev/null 2>&1; rc=$?
    check "and still loads" "[ $rc -eq 0 ]"
    "$NNLAB" train mlp --limit 2000 --epochs 1 --optim sgd --lr 1e30 --json --quiet >"$tmp/out" 2>/dev/null; rc=$?
    check "lr 1e30 with --json -> exit 1 and status nonfinite" "[ $rc -eq 1 ] && grep -q '\"status\":\"nonfinite\"' '$tmp/out'"

    # ---- progress display: plain lines off a TTY, a \r-redrawn bar on a TTY ----
    "$NNLAB" train mlp --limit 3000 --epochs 1 --hidden 32 >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "progress off a TTY: plain lines with step/total, loss, samples/s, ETA" \
      "[ $rc -eq 0 ] && grep -Eq '^epoch 1/1 step [0-9]+/24 loss [0-9.]+ [0-9]+ samples/s ETA [0-9:]+$' '$tmp/err' && ! grep -q \$'\\r' '$tmp/err'"
    check "epoch summary line" "grep -q '^epoch 1/1: loss' '$tmp/err'"
    if command -v script >/dev/null 2>&1; then
      script -qefc "'$NNLAB' train mlp --limit 3000 --epochs 1 --hidden 32 --batch 16" "$tmp/tty.log" >/dev/null 2>&1
      check "progress on a TTY: redrawn with \\r, with ETA" "grep -q \$'\\r' '$tmp/tty.log' && grep -q 'ETA' '$tmp/tty.log' && grep -q 'samples/s' '$tmp/tty.log'"
    else
      echo "skip TTY progress check: 'script' not installed"
    fi
  else
    echo "SKIP data-dependent CLI checks: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
  fi
fi

if [ "$MODE" = repro ] || [ "$MODE" = all ]; then
  if [ $data_ok = 0 ]; then
    echo "SKIP repro check: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
  else
    t0=$(date +%s)
    # the smoke configurations (same code path, tiny sizes): the verdicts on the claims are the quick ledger's (the
    # main job, tools/quickstart.sh; tools/repro-check.sh), the suite checks the pipeline (two experiments run
    # concurrently by the default -j, the table, ledger.json with the v2 fields, report.html)
    "$NNLAB" repro mlp cnn --smoke --out "$tmp/out" >"$tmp/table" 2>"$tmp/err"; rc=$?
    t1=$(date +%s)
    cat "$tmp/table"
    echo "repro mlp cnn --smoke took $((t1 - t0)) s"
    check "repro mlp cnn --smoke -> exit 0" "[ $rc -eq 0 ]"
    [ $rc -eq 0 ] || tail -20 "$tmp/err"
    check "ledger.json, report.html and per-experiment logs written" "[ -s '$tmp/out/ledger.json' ] && [ -s '$tmp/out/report.html' ] && [ -f '$tmp/out/logs/mlp.log' ] && [ -f '$tmp/out/logs/cnn.log' ]"
    check "table printed with both verdicts" "grep -Eq '^mlp .* pass ' '$tmp/table' && grep -Eq '^cnn .* pass ' '$tmp/table'"
    if [ $have_py = 1 ]; then
      check "ledger.json: mlp and cnn in order, v2 fields (3 seeds, parts, controls rejected, machine, commit)" "python3 - '$tmp/out/ledger.json' <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j['mode'] == 'smoke', j['mode']
assert [x['method'] for x in j['entries']] == ['mlp', 'cnn'], [x['method'] for x in j['entries']]
e = {x['method']: x for x in j['entries']}
for x in e.values():
    for k in ('method', 'paper', 'claim', 'metrics', 'verdict', 'seconds', 'parts', 'controls', 'seeds', 'machine', 'commit'):
        assert k in x, k
    assert x['verdict'] == 'pass', (x['method'], x['measured'])
    assert x['seeds'] >= 3, x['seeds']
    assert all(p['verdict'] == 'pass' for p in x['parts']), x['parts']
    assert x['controls'] and all(c['verdict'] == 'fail' for c in x['controls']), x['controls']
    assert {c['name'] for c in x['controls']} >= {'shuffled-labels'}
    assert len(x['curves']) >= 2
print('smoke: mlp test accuracy %.4f, cnn test accuracy %.4f (means over 3 seeds)' % (e['mlp']['metrics']['test_accuracy'], e['cnn']['metrics']['test_accuracy']))
PY"
    else
      check "ledger.json verdicts pass" "[ \$(grep -c '\"verdict\":.*\"pass\"' '$tmp/out/ledger.json') -eq 2 ]"
    fi
    check "report.html has the table and SVG plots" "grep -q '<table id=\"ledger\">' '$tmp/out/report.html' && [ \$(grep -o '<svg' '$tmp/out/report.html' | wc -l) -ge 4 ]"
  fi
fi

echo "$n checks, $([ $fail -eq 0 ] && echo 'all passed' || echo 'some FAILED')"
exit $fail

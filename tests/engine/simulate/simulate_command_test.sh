#!/bin/bash
# `dwarp simulate dim-complexity` as a process, with tiny settings: the table is printed, the SVG is written
# and well-formed XML with one panel per (function, run), the JSON holds the numbers; bad options fail
# naming the value and write nothing.
# Usage: simulate_command_test.sh DWARP_BINARY
set -u
dwarp=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$("$dwarp" simulate dim-complexity --functions square,sine --dims 1,20 --hidden 8 --pretrain-epochs 150 \
      --epochs 60 --train-points 24 --threads 1 -o "$work/fig/dc.svg" --json "$work/dc.json" 2>&1) ||
  fail "the run exited $?: $out"
echo "$out"
grep -q "held-out R2 against the target sin(1.5\*pi\*x/2)" <<<"$out" || fail "no table header"
grep -Eq "^square +\| +[-0-9.]+ +\| +[-0-9.]+ +\| +[-0-9.]+ +\| +[-0-9.]+ +\| +[-0-9.]+$" <<<"$out" ||
  fail "no table row for square (pre-fit, d=0, d=1, d=20, full)"
grep -Eq "^sine \(sin\(pi\*x/2\)\): (d = [0-9.]+ reaches|R2 >= 0.950 not reached)" <<<"$out" ||
  fail "no d line for sine"
[ -s "$work/fig/dc.svg" ] || fail "no SVG at $work/fig/dc.svg"

/usr/bin/python3 - "$work/fig/dc.svg" "$work/dc.json" <<'PY' || fail "the SVG or the JSON is wrong"
import json, sys, xml.dom.minidom
doc = xml.dom.minidom.parse(sys.argv[1])  # raises on malformed XML
root = doc.documentElement
assert root.tagName == "svg", root.tagName
assert root.getAttribute("xmlns") == "http://www.w3.org/2000/svg"
# 2 functions x (initial, d=1, d=20, full) panels, each with the target and one fit.
lines = doc.getElementsByTagName("polyline")
assert len(lines) == 2 * 4 * 2, len(lines)
texts = [t.firstChild.data for t in doc.getElementsByTagName("text") if t.firstChild]
for label in ("initial", "d=1", "d=20", "full", "x^2", "sin(pi*x/2)"):
    assert label in texts, (label, texts)
numbers = json.load(open(sys.argv[2]))
assert [f["name"] for f in numbers["functions"]] == ["square", "sine"]
assert [fit["d"] for fit in numbers["functions"][0]["fits"]] == [1, 20, "full"]
assert len(numbers["grid"]) == 23 and len(numbers["functions"][1]["fits"][1]["curve"]) == 23
PY

bad=$("$dwarp" simulate dim-complexity --dims 1,0 -o "$work/bad.svg" 2>&1)
[ $? -eq 1 ] || fail "--dims 1,0 did not exit 1: $bad"
grep -q "d = 0" <<<"$bad" || fail "--dims 1,0: message does not name d = 0: $bad"
bad=$("$dwarp" simulate dim-complexity --functions quartic -o "$work/bad.svg" 2>&1)
[ $? -eq 1 ] || fail "--functions quartic did not exit 1: $bad"
grep -q "'quartic'" <<<"$bad" || fail "--functions quartic: message does not name it: $bad"
[ ! -e "$work/bad.svg" ] || fail "a failed run wrote an SVG"
echo PASS

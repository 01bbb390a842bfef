#!/usr/bin/env bash
# Headless-Chromium screenshots of the demo report and of a report with FAIL/ERROR/CONTAMINATED rows
# (bench/report_examples.py), saved small (256-colour PNG) into docs/img/. Needs Debian's chromium
# and `make demo` run first.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
$BIN/pack report latent-bridge local-ablation forensics ecmoe smollm2 --out reports/demo >/dev/null
$BIN/python bench/report_examples.py runs reports/examples >/dev/null
mkdir -p docs/img
for n in demo examples; do
  profile=$(mktemp -d)
  chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --disable-sync --no-first-run --user-data-dir="$profile" --screenshot="docs/img/report-$n.png" \
    --window-size=1400,2000 "file://$PWD/reports/$n/report.html" 2>/dev/null
  rm -rf "$profile"
  $BIN/python -c "import sys; from PIL import Image; p=sys.argv[1]; Image.open(p).convert('RGB').quantize(256).save(p, optimize=True)" "docs/img/report-$n.png"
done
ls -l docs/img/report-*.png

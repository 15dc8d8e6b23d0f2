#!/bin/bash
# Install time (venv creation, pip upgrade, install) and venv size of the three installs,
# through the Makefile targets `make serve`, `make serve EXTRAS=sam` and `make test` use.
# pip's cache makes the times those of a warm cache. Usage: bash scripts/measure-installs.sh
cd "$(dirname "$0")/.."
out=${OUT:-$(mktemp -d)}
for kind in base sam test; do
  venv=$out/venv-$kind
  rm -rf $venv
  case $kind in
    base) target=$venv/.installed-serve; extra="" ;;
    sam) target=$venv/.installed-serve-sam; extra="EXTRAS=sam" ;;
    test) target=$venv/.installed; extra="" ;;
  esac
  start=$(date +%s.%N)
  make -s VENV=$venv $extra $target > $out/$kind.log 2>&1
  rc=$?
  end=$(date +%s.%N)
  size=$(du -sm $venv | cut -f1)
  torch=$($venv/bin/python -c "import importlib.util; print(bool(importlib.util.find_spec('torch')))")
  rm -rf $venv
  echo "$kind rc=$rc seconds=$(echo "$end - $start" | bc) size_MiB=$size torch=$torch"
done

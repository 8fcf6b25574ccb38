#!/usr/bin/env bash
# Regenerates parties/wire/ from protos/. The virtual include path makes the
# generated modules import each other as `parties.wire.*`.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
out="${1:-.}"
"$python" -m grpc_tools.protoc -Iparties/wire=protos \
  --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
  parties/wire/airlock.proto

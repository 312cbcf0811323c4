#!/usr/bin/env bash
# Install Amalthea into ./.venv and start it with embedded defaults (SQLite, local accounts,
# built-in proxy on http://127.0.0.1:8000). The first start prints a one-time admin setup link.
# State (database, secrets, logs, per-user directories) goes to ./amalthea-data.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/amalthea ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q .
fi
mkdir -p amalthea-data
cd amalthea-data
exec ../.venv/bin/amalthea "$@"

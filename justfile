# OmniStream tasks. `just --list` shows them. Each works from a fresh clone.

venv := ".venv"
py := venv / "bin/python"

# Create the virtualenv and install the project with its test tools
install:
    python3 -m venv {{venv}} && {{venv}}/bin/pip install -q -e ".[test]"

# API + worker + embedded PostgreSQL and Redis
dev *args: install
    {{venv}}/bin/omnistream dev {{args}}

# The API on granian (needs DATABASE_URL and REDIS_URL)
serve *args: install
    {{venv}}/bin/omnistream serve {{args}}

# An arq worker (needs DATABASE_URL and REDIS_URL)
worker: install
    {{venv}}/bin/omnistream worker

# Apply database migrations
migrate: install
    {{venv}}/bin/omnistream migrate

# The whole test suite on real PostgreSQL and Redis
test *args: install
    {{py}} -m pytest {{args}}

# Throughput benchmarks, printed side by side with their baselines
bench: install
    {{py}} -m benchmarks

# Lint (ruff)
lint: install
    {{venv}}/bin/ruff check . && {{venv}}/bin/ruff format --check .

# Format (ruff)
fmt: install
    {{venv}}/bin/ruff format . && {{venv}}/bin/ruff check --fix .

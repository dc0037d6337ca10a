# The two commands of the README (`make demo`, `make test`) and a few helpers.
# Everything lands in .venv (created here, nothing global); the ISO XSDs in .schemas.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: demo test bench schemas install clean image

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

schemas: $(STAMP)
	$(BIN)/mekong schemas fetch

demo: schemas
	$(BIN)/mekong demo

test: schemas
	$(BIN)/python -m pytest

bench: schemas
	$(BIN)/mekong bench --json bench-out/bench-max.json
	$(BIN)/mekong bench --rate 500 --count 15000 --json bench-out/bench-500.json
	$(BIN)/python tests/bench/bench_iso20022.py --json bench-out/bench-iso20022.json
	$(BIN)/python tests/bench/bench_qr.py --json bench-out/bench-qr.json
	$(BIN)/python tests/bench/bench_handlers.py --batch 5 --json bench-out/bench-handlers-5.json
	$(BIN)/python tests/bench/bench_broker_hop.py --rate 500 --json bench-out/bench-broker-hop.json
	$(BIN)/python tests/bench/bench_recon.py --json bench-out/bench-recon.json

# The switch image (needs a Docker engine; deploy/xsd must hold the official XSDs no wheel ships).
image:
	docker build -f deploy/Dockerfile -t mekong-switch:0.1.0 .

clean:
	rm -rf $(VENV) .schemas .cache demo-out bench-out .pytest_cache .hypothesis

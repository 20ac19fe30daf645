.PHONY: install serve test lint
install:
	./scripts/install.sh
serve:
	./scripts/serve.sh
test:
	./scripts/test.sh
lint:
	.venv/bin/ruff check src tests

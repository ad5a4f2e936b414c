# git-codex-handoff — common tasks. `make help` lists them.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(DESTDIR)$(PREFIX)/bin
CARGO ?= cargo

.PHONY: help build test bench demo install uninstall clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## Build the release binary
	$(CARGO) build --release --locked

test: ## Run the whole test suite
	$(CARGO) test --locked

bench: ## Benchmark snapshots against plain git (prints figures and ratios)
	$(CARGO) bench --locked --bench snapshot

demo: build ## A real handoff and hand-back over a throw-away sshd on 127.0.0.1
	sh scripts/demo.sh

install: build ## Install into $(DESTDIR)$(PREFIX)
	install -d $(BINDIR)
	install -m 0755 target/release/git-codex-handoff $(BINDIR)/git-codex-handoff

uninstall: ## Remove what `make install` installed
	rm -f $(BINDIR)/git-codex-handoff

clean: ## Remove build output
	$(CARGO) clean

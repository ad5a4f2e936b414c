# git-codex-handoff — common tasks. `make help` lists them.

PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
# The binary `install-files` installs (`make install` builds it first).
BIN ?= target/release/git-codex-handoff
BINDIR = $(DESTDIR)$(PREFIX)/bin
MANDIR = $(DESTDIR)$(PREFIX)/share/man/man1
BASHDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
HOOKSDIR = $(DESTDIR)$(PREFIX)/share/git-codex-handoff/hooks
HOOKS = pre-commit

.PHONY: help build test bench demo man install install-files uninstall clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

build: ## Build the release binary
	$(CARGO) build --release --locked

test: ## Run the whole test suite (with the test-only crash points built in)
	$(CARGO) test --locked --features test-faults

bench: ## Benchmark snapshots, handoffs (vs plain git and the floor), big rollouts, the thread store (BENCH_QUICK=1: small)
	rm -f target/bench-data/figures.tsv
	$(CARGO) bench --locked --bench snapshot --bench handoff --bench threads
	sh scripts/bench-summary.sh target/bench-data/figures.tsv

demo: build ## A real handoff and hand-back over a throw-away sshd on 127.0.0.1
	sh scripts/demo.sh

man: ## Regenerate man/git-codex-handoff.1 from the command-line definitions
	$(CARGO) run --quiet --locked --bin git-codex-handoff -- generate man > man/git-codex-handoff.1.tmp
	mv man/git-codex-handoff.1.tmp man/git-codex-handoff.1

install: build ## Build, then install binary, man page, completions and hooks (PREFIX=/usr/local, DESTDIR)
	$(MAKE) install-files

install-files: ## Install without building: BIN (default target/release/...), man page, completions, hooks
	install -d $(BINDIR) $(MANDIR) $(BASHDIR) $(ZSHDIR) $(FISHDIR) $(HOOKSDIR)
	install -m 0755 $(BIN) $(BINDIR)/git-codex-handoff
	install -m 0644 man/git-codex-handoff.1 $(MANDIR)/git-codex-handoff.1
	$(BIN) generate completions bash > $(BASHDIR)/git-codex-handoff
	$(BIN) generate completions zsh > $(ZSHDIR)/_git-codex-handoff
	$(BIN) generate completions fish > $(FISHDIR)/git-codex-handoff.fish
	for hook in $(HOOKS); do install -m 0755 git-hooks/$$hook $(HOOKSDIR)/$$hook || exit 1; done

uninstall: ## Remove exactly what `make install` installed
	rm -f $(BINDIR)/git-codex-handoff $(MANDIR)/git-codex-handoff.1
	rm -f $(BASHDIR)/git-codex-handoff $(ZSHDIR)/_git-codex-handoff $(FISHDIR)/git-codex-handoff.fish
	for hook in $(HOOKS); do rm -f $(HOOKSDIR)/$$hook; done
	rmdir $(HOOKSDIR) $(DESTDIR)$(PREFIX)/share/git-codex-handoff 2>/dev/null || true

clean: ## Remove build output
	$(CARGO) clean

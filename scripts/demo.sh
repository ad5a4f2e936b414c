#!/bin/sh
# A walk through what a handoff carries: a thread's exact Git state captured
# in one repository and restored in another, with nothing lost.
set -eu

BIN_DIR="$(cd "$(dirname "$0")/.." && pwd)/target/release"
PATH="$BIN_DIR:$PATH"
export PATH
WORK="$(mktemp -d "${TMPDIR:-/tmp}/codex-handoff-demo.XXXXXX")"
export HOME="$WORK/home" GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME"
git config --global user.name "Demo User"
git config --global user.email demo@example.com
git config --global init.defaultBranch main
git config --global codex-handoff.machine laptop

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "A repository on 'this computer' with a thread's work in progress"
git init -q "$WORK/laptop"
cd "$WORK/laptop"
printf 'fn main() {}\n' > main.rs
printf '#!/bin/sh\necho build\n' > build.sh && chmod +x build.sh
git add . && git commit -qm "initial"
printf 'fn main() { println!("staged"); }\n' > main.rs && git add main.rs
printf 'fn main() { println!("staged, then edited"); }\n' > main.rs
printf 'notes\n' > TODO.txt
printf 'binary\000data' > blob.bin
ln -s main.rs link.rs
show git status --short

step "Start a thread on it (the working tree and index are not touched)"
show git codex-handoff thread new --title "Demo thread"
show git codex-handoff thread show 1
show git status --short

step "The state is ordinary git data: a ref and a note"
show git for-each-ref refs/codex-handoff/
git notes --ref codex-handoff show "$(git rev-parse "refs/codex-handoff/threads/$(git codex-handoff thread show 1 --json | sed -n 's/.*"uuid": "\(.*\)".*/\1/p')")" | head -12

step "Another clone (as on a dev box) gets the thread's refs and restores it"
git clone -q --mirror "$WORK/laptop" "$WORK/devbox.git"
cd "$WORK/devbox.git"
show git codex-handoff thread restore 1 "$WORK/devbox-worktree"
cd "$WORK/devbox-worktree"
show git status --short

step "Exactly the same state on both sides?"
if [ "$(git -C "$WORK/laptop" status --porcelain=v2 --untracked-files=all)" = "$(git status --porcelain=v2 --untracked-files=all)" ] \
   && [ "$(git -C "$WORK/laptop" ls-files -s)" = "$(git ls-files -s)" ] \
   && cmp -s "$WORK/laptop/main.rs" main.rs && cmp -s "$WORK/laptop/blob.bin" blob.bin; then
  echo "yes: git status, the index and the file bytes match"
else
  echo "NO: the states differ" >&2
  exit 1
fi
echo
echo "Demo files are in $WORK"

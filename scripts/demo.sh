#!/bin/sh
# A real handoff and hand-back on this machine: a throw-away sshd on
# 127.0.0.1 plays the dev box, with its own keys and its own HOME. Where npm
# (or an earlier test run) provides the Codex CLI, a real Codex thread goes
# to the dev box and back too, its model played by scripts/mock_model.py.
set -eu

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release/git-codex-handoff"
PATH="$ROOT/target/release:$PATH"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/codex-handoff-demo.XXXXXX")"
LAPTOP_HOME="$WORK/laptop-home"
DEVBOX_HOME="$WORK/devbox-home"
mkdir -p "$LAPTOP_HOME" "$DEVBOX_HOME"
export PATH GIT_CONFIG_NOSYSTEM=1 HOME="$LAPTOP_HOME"
unset GIT_SSH_COMMAND GIT_DIR GIT_WORK_TREE CODEX_HANDOFF_THREAD

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
as_devbox() { HOME="$DEVBOX_HOME" "$@"; }

for home in "$LAPTOP_HOME" "$DEVBOX_HOME"; do
  HOME="$home" git config --global user.name "Demo User"
  HOME="$home" git config --global user.email demo@example.com
  HOME="$home" git config --global init.defaultBranch main
  HOME="$home" git config --global advice.detachedHead false
done
git config --global codex-handoff.machine laptop
as_devbox git config --global codex-handoff.machine devbox

SSHD_PID=""
MODEL_PID=""
cleanup() {
  [ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null
  [ -n "$MODEL_PID" ] && kill "$MODEL_PID" 2>/dev/null
  true
}
trap cleanup EXIT INT TERM

# The Codex CLI the tests use (pinned), installed from npm into target/tmp once.
CODEX_VERSION=0.169.0
CODEX_PREFIX="$ROOT/target/tmp/codex-cli-$CODEX_VERSION"
CODEX="$CODEX_PREFIX/node_modules/.bin/codex"
find_codex() {
  command -v python3 >/dev/null || { CODEX_MISSING="python3 is not installed"; return 1; }
  [ -x "$CODEX" ] && return 0
  command -v npm >/dev/null || { CODEX_MISSING="npm is not installed"; return 1; }
  echo "Installing the Codex CLI $CODEX_VERSION from npm into $CODEX_PREFIX (once)..."
  npm install --no-audit --no-fund --silent --cache "$WORK/npm-cache" --prefix "$CODEX_PREFIX" \
    "@openai/codex@$CODEX_VERSION" >"$WORK/npm.log" 2>&1 && [ -x "$CODEX" ] && return 0
  CODEX_MISSING="npm could not install it (see $WORK/npm.log)"
  return 1
}
SESSION_PATH="/usr/local/bin:/usr/bin:/bin"
if find_codex; then
  # Codex and node on every PATH, the dev box's sessions included.
  NODE_DIR="$(dirname "$(command -v node || echo /usr/bin/node)")"
  PATH="$(dirname "$CODEX"):$NODE_DIR:$PATH"
  SESSION_PATH="$(dirname "$CODEX"):$NODE_DIR:$SESSION_PATH"
  # As an npm install under nvm does: Codex on the dev box's login PATH, where `host check` looks.
  printf 'PATH="%s:$PATH"\nexport PATH\n' "$(dirname "$CODEX"):$NODE_DIR" > "$DEVBOX_HOME/.profile"
fi

# Start an sshd on loopback with throw-away keys; every session gets HOME=$DEVBOX_HOME (and Codex on its PATH).
start_sshd() {
  [ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null && command -v ssh >/dev/null || return 1
  S="$WORK/ssh"; mkdir -p "$S"; chmod 700 "$S"
  ssh-keygen -q -t ed25519 -N '' -f "$S/host_key" || return 1
  ssh-keygen -q -t ed25519 -N '' -f "$S/user_key" || return 1
  cp "$S/user_key.pub" "$S/authorized_keys"
  [ "$(id -u)" = 0 ] && { mkdir -p /run/sshd 2>/dev/null || true; }
  PORT=$(( 20000 + $$ % 20000 ))
  cat > "$S/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $PORT
HostKey $S/host_key
AuthorizedKeysFile $S/authorized_keys
PidFile $S/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
LogLevel VERBOSE
SetEnv HOME=$DEVBOX_HOME PATH=$SESSION_PATH
CONF
  /usr/sbin/sshd -D -e -f "$S/sshd_config" 2> "$S/sshd.log" &
  SSHD_PID=$!
  i=0
  until grep -q "Server listening" "$S/sshd.log" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 50 ] && return 1
    kill -0 "$SSHD_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1-2 "$S/host_key.pub")" > "$S/known_hosts"
  cat > "$S/ssh_config" <<CONF
Host devbox
  HostName 127.0.0.1
  Port $PORT
  User $(id -un)
  IdentityFile $S/user_key
  IdentitiesOnly yes
  UserKnownHostsFile $S/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
CONF
  export GIT_SSH_COMMAND="ssh -F $S/ssh_config"
}

bold "A repository on 'this computer' (HOME=$LAPTOP_HOME)"
git init -q "$WORK/laptop/project"
cd "$WORK/laptop/project"
printf 'fn main() {}\n' > main.rs
printf '#!/bin/sh\necho build\n' > build.sh && chmod +x build.sh
printf 'target/\n' > .gitignore
git add . && git commit -qm "initial"

bold "The same repository cloned on 'devbox' (HOME=$DEVBOX_HOME) and saved there as a project"
as_devbox git clone -q "$WORK/laptop/project" "$WORK/devbox/project"
(cd "$WORK/devbox/project" && as_devbox git codex-handoff project save)

if start_sshd; then
  bold "devbox is reached over SSH: sshd on 127.0.0.1 with throw-away keys"
  show git codex-handoff host add devbox devbox --helper "$BIN"
  SSH=yes
else
  bold "sshd cannot run here: using the local transport instead (helper as a child process)"
  cleanup; SSHD_PID=""
  show git codex-handoff host add devbox "$DEVBOX_HOME" --transport local
  SSH=no
fi
show git codex-handoff host check devbox

bold "A thread with work in progress: staged, unstaged, untracked, binary, a symlink"
show git codex-handoff thread new --title "Add a greeting" --branch feature/greeting
printf 'fn main() { println!("hello"); }\n' > main.rs && git add main.rs
printf 'fn main() { println!("hello, world"); }\n' > main.rs
printf 'notes\n' > TODO.txt
printf 'binary\000data' > logo.bin
ln -s main.rs entry.rs
show git status --short
BEFORE="$(git status --porcelain=v2 --untracked-files=all)"

bold "Which hosts can take it?"
show git codex-handoff destinations

bold "Hand thread 1 to devbox"
show git codex-handoff 1 devbox --yes
REMOTE_WT="$(git codex-handoff thread show 1 --json >/dev/null; ls -d "$DEVBOX_HOME"/.codex/worktrees/*/1-*)"

bold "On devbox: the same state in a new worktree ($REMOTE_WT)"
cd "$REMOTE_WT"
show git status --short
[ "$(git status --porcelain=v2 --untracked-files=all)" = "$BEFORE" ] && echo "identical to this computer's: yes"
show git codex-handoff thread list

bold "Work continues on devbox: a commit, then new edits"
as_devbox git add -A && as_devbox git commit -qm "Greet the world"
printf 'fn main() { println!("hello from devbox"); }\n' > main.rs
printf 'more notes\n' >> TODO.txt && git add TODO.txt
show git status --short
ON_DEVBOX="$(git status --porcelain=v2 --untracked-files=all)"

bold "Bring it back: git codex-handoff 1 local"
cd "$WORK/laptop/project"
show git codex-handoff 1 local --yes
show git status --short
show git log --oneline -2
[ "$(git status --porcelain=v2 --untracked-files=all)" = "$ON_DEVBOX" ] && echo "identical to devbox's: yes"

bold "The thread's history"
show git codex-handoff thread log 1

if [ -n "${CODEX_MISSING:-}" ]; then
  bold "A real Codex thread: skipped ($CODEX_MISSING); the Git-only demo above is complete"
else
  . "$ROOT/scripts/demo-codex.sh"
fi
if [ "$SSH" = yes ]; then
  echo
  echo "SSH connections accepted by the demo sshd: $(grep -c 'Accepted publickey' "$WORK/ssh/sshd.log") (host check, destinations, and one per handoff)"
fi
echo
echo "Demo files are in $WORK"

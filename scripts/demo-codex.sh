# The demo's second part, sourced by scripts/demo.sh once the Codex CLI is
# found: a real Codex thread with one real turn here goes to devbox by its
# Codex id, goes on there with its whole conversation, and comes back. The
# model is scripts/mock_model.py on 127.0.0.1: its answers say how many of
# the user's messages it was sent and the working directory Codex reported.

CODEX_STARTED=$(date +%s)
bold "A real Codex thread (Codex CLI $CODEX_VERSION), its model a stand-in on 127.0.0.1"
python3 "$ROOT/scripts/mock_model.py" "$WORK/model.port" &
MODEL_PID=$!
i=0
until [ -s "$WORK/model.port" ]; do
  i=$((i + 1)); [ $i -gt 50 ] && { echo "the stand-in model did not start"; exit 1; }
  sleep 0.1
done
MODEL_PORT=$(cat "$WORK/model.port")
for home in "$LAPTOP_HOME" "$DEVBOX_HOME"; do
  mkdir -p "$home/.codex"
  cat > "$home/.codex/config.toml" <<CONF
model = "mock-model"
model_provider = "mock"
approval_policy = "never"
sandbox_mode = "danger-full-access"

# No metrics upload and no plugin sync: nothing leaves 127.0.0.1.
[otel]
metrics_exporter = "none"

[features]
plugins = false

[model_providers.mock]
name = "mock"
base_url = "http://127.0.0.1:$MODEL_PORT/v1"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
CONF
done

# Codex prints its banner and warnings on stderr: kept in a log, the answer shown.
codex_turn() { "$@" </dev/null 2>>"$WORK/codex.log"; }

cd "$WORK/laptop/project"
git worktree add -q -b codex/parser "$WORK/laptop/codex-work"
cd "$WORK/laptop/codex-work"
printf 'fn parse(input: &str) -> usize { input.len() - 1 }\n' > parser.rs
echo '$ codex exec "The parser test fails at the end of the input: why?"'
codex_turn codex exec "The parser test fails at the end of the input: why?"
ROLLOUT=$(ls "$LAPTOP_HOME"/.codex/sessions/*/*/*/rollout-*.jsonl | head -n 1)
ID=$(basename "$ROLLOUT" .jsonl | sed 's/.*\([0-9a-f]\{8\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{12\}\)$/\1/')
show git codex-handoff thread list --codex

if [ -t 0 ] && [ -t 1 ]; then
  bold "Hand the Codex thread to devbox by its id (no setup) and go on with it there, in this terminal"
  # What --attach runs there (by default `codex resume <id>`, Codex's own terminal interface).
  show git config --global codex-handoff.attachCommand \
    "codex exec resume {codex_thread} 'Go on, on devbox: fix it.' 2>/dev/null"
  show git codex-handoff "$ID" devbox --yes --attach
  git config --global --unset codex-handoff.attachCommand
  CODEX_WT="$(ls -d "$DEVBOX_HOME"/.codex/worktrees/*/2-*)"
else
  bold "Hand the Codex thread to devbox by its id (no setup), untracked parser.rs and all"
  show git codex-handoff "$ID" devbox --yes
  CODEX_WT="$(ls -d "$DEVBOX_HOME"/.codex/worktrees/*/2-*)"
  bold "On devbox it goes on with its whole conversation, in the new worktree"
  echo "(with a terminal, --attach would do this over SSH; here it runs as devbox's user in $CODEX_WT)"
  echo "\$ codex exec resume $ID 'Go on, on devbox: fix it.'"
  (cd "$CODEX_WT" && export HOME="$DEVBOX_HOME" && codex_turn codex exec resume "$ID" "Go on, on devbox: fix it.")
fi
(cd "$CODEX_WT" && printf 'fn parse(input: &str) -> usize { input.len() }\n' > parser.rs)

bold "Bring it back and go on here: one conversation, in one rollout file"
show git codex-handoff "$ID" local --yes
echo "\$ codex exec resume $ID 'Back home: what changed on devbox?'"
codex_turn codex exec resume "$ID" "Back home: what changed on devbox?"
show cat parser.rs
echo "Rollout files of the thread here: $(ls "$LAPTOP_HOME"/.codex/sessions/*/*/*/rollout-*"$ID".jsonl | wc -l)"
echo "The Codex part took $(( $(date +%s) - CODEX_STARTED )) s."

fn main() -> std::process::ExitCode {
    git_codex_handoff::main()
}

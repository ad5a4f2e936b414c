//! `git-codex-handoff remote serve`: the helper run over SSH; `remote attach`:
//! the session `--attach` starts beside it.

use crate::cli::args::{RemoteAttachArgs, RemoteServeArgs};
use crate::error::{Error, Result};
use crate::remote::restricted::{self, Allowed};

pub fn run(args: RemoteServeArgs) -> Result<()> {
    if args.restricted {
        // A forced command: sshd passes what the client asked for.
        let original = std::env::var("SSH_ORIGINAL_COMMAND").ok();
        match restricted::decide(original.as_deref(), &crate::handoff::projects::saved_repositories()?)? {
            Allowed::Serve => {}
            Allowed::Git { service: "receive-pack", repository } => {
                let code = crate::remote::incoming_only::receive_pack(&repository)?;
                std::process::exit(code);
            }
            Allowed::Git { service, repository } => {
                use std::os::unix::process::CommandExt;
                // No shell: git gets the path as one argument.
                let error = std::process::Command::new("git").arg(service).arg(&repository).exec();
                return Err(Error::failed("git_missing", format!("could not run git {service}")).with_source(error));
            }
        }
    } else {
        // The helper learns CODEX_HOME from the login shell, as Codex there gets it;
        // a forced command runs exactly what authorized_keys says, and nothing more.
        crate::login_shell::allow_asking();
    }
    let stdin = std::io::stdin();
    // (Not locked: the thread that passes progress on writes to it while a request runs.)
    crate::handoff::helper::serve(stdin.lock(), std::io::stdout(), std::io::stderr(), args.restricted)
}

/// Run what `serve` left in the ticket, in this terminal, and exit with its status.
pub fn attach(args: RemoteAttachArgs) -> Result<()> {
    let code = crate::handoff::attach::run_ticket(&args.ticket)?;
    std::process::exit(code);
}

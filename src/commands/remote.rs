//! `git-codex-handoff remote serve`: the helper run over SSH.

use crate::cli::RemoteServeArgs;
use crate::error::{Error, Result};

pub fn run(args: RemoteServeArgs) -> Result<()> {
    if args.restricted {
        return Err(Error::not_yet_available("remote serve --restricted"));
    }
    let stdin = std::io::stdin();
    crate::helper::serve(stdin.lock(), std::io::stdout().lock(), std::io::stderr())
}

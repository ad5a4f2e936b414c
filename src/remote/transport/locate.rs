//! Finding the helper where people install it, when a host's plain PATH
//! (that of the non-login shell ssh runs a command with) lacks it: the
//! login shell is asked on the same connection (`login_shell`), and the
//! path it finds is remembered in the host's `helper` setting, so later
//! handoffs start the helper directly. Any transport that can start the
//! login shell on its connection can do this; the question and the reading
//! of the answer are the same for all.
//!
//! A restricted key is never asked: sshd runs the key's forced command
//! whatever the session asks for, so no login shell is started.

use super::link::Link;
use crate::login_shell::{self, How, Question, USUAL_FOLDERS};

/// Where the helper was found.
#[derive(Debug, Clone)]
pub struct Located {
    /// Absolute, as the helper's command line names it.
    pub path: String,
    pub how: How,
    /// As the person knows it (`~/...`).
    pub shown: String,
    /// Why it could not be stored in the host's `helper` setting, if it could not.
    pub not_remembered: Option<String>,
}

impl Located {
    /// What the person learns, once.
    pub fn notice(&self, host: &str) -> String {
        let found = format!("found the helper at {} {}", self.shown, self.how.describe());
        match &self.not_remembered {
            None => format!("{found}; remembered for {host}"),
            Some(why) => format!("{found}; could not remember it for {host} ({why})"),
        }
    }
}

/// Ask the login shell at the other end of `link` where the helper is.
/// `Err`: why not, to add to the "not installed" message.
pub fn helper(link: &mut dyn Link) -> Result<Located, String> {
    let output = match link.ask_login_shell(Question::Locate.input().as_bytes()) {
        None => return Err("this transport cannot ask the login shell".into()),
        Some(Err(err)) => return Err(format!("the login shell could not be asked ({})", err.full_message())),
        Some(Ok(output)) => output,
    };
    let answer = login_shell::parse(&output).ok_or("the login shell did not answer the lookup")?;
    let Some(found) = answer.helper.clone() else {
        return Err(format!("not found through the login shell either, nor in {}", USUAL_FOLDERS.join(", ")));
    };
    let shown = answer.tilde(&found.path);
    if crate::config::check_helper(&found.path).is_err() {
        return Err(format!(
            "found at {shown}, a path that cannot be started without quoting (spaces or shell characters): \
             link it from a folder with a plain name"
        ));
    }
    Ok(Located { path: found.path, how: found.how, shown, not_remembered: None })
}

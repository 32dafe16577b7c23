//! The terminal: a password read without echo (termios), a yes/no
//! question, a line from standard input.

use std::io::{BufRead, IsTerminal, Write};

use super::{Failure, Result};

/// Whether a person is at standard input and standard error (where
/// questions are asked).
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// One line of standard input, without its line ending.
pub fn read_stdin_line(what: &str) -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::error(format!("cannot read {what} from standard input: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Turns terminal echo off for standard input until dropped.
struct NoEcho {
    saved: libc::termios,
}

impl NoEcho {
    fn new() -> std::io::Result<NoEcho> {
        // SAFETY: tcgetattr fills the struct it is given; fd 0 is open.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // Still echo the newline, so the next output starts on its own line.
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: a termios derived from the one the terminal gave.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(NoEcho { saved })
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `new`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

/// A password: asked without echo when standard input is a terminal (and
/// `from_stdin` was not asked for), else the first line of standard input.
pub fn secret(prompt: &str, from_stdin: bool) -> Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        read_stdin_line("the password")
    } else {
        password(prompt)
    }
}

/// Asks for a password on the terminal, without echo.
fn password(prompt: &str) -> Result<String> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let guard = NoEcho::new()
        .map_err(|e| Failure::error(format!("cannot turn off the terminal's echo: {e}")))?;
    let line = read_stdin_line("the password");
    drop(guard);
    line
}

/// Asks a yes/no question on the terminal; only "y"/"yes" is yes.
pub fn confirm(question: &str) -> Result<bool> {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let answer = read_stdin_line("the answer")?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

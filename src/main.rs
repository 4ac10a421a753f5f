//! The `landwatch` command: parses arguments, runs a command, maps the outcome to an exit code.
//!
//! Exit codes: 0 done; 2 done, but some inputs were skipped (each named in the output);
//! 1 failed (the error chain is printed, or the command named what failed, as `verify` does).

mod cli;
mod store_cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    reset_sigpipe();
    match cli::run() {
        Ok(cli::Outcome::Done) => ExitCode::SUCCESS,
        Ok(cli::Outcome::DoneWithSkips) => ExitCode::from(2),
        Ok(cli::Outcome::Failed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `landwatch cases | head` should stop quietly like any Unix tool, not panic on a closed pipe:
/// Rust ignores SIGPIPE by default, so restore the default action.
fn reset_sigpipe() {
    // SAFETY: called once at start-up, before any thread is spawned; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

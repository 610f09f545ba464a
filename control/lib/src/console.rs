//! `rvs -i`: a testpmd-style `rvs> ` prompt on the daemon's terminal, with line editing,
//! history and tab completion. Every line goes through [`Appliance::console`], the same
//! layer the control socket uses.

use crate::appliance::verbs::VERBS;
use crate::appliance::Appliance;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub const PROMPT: &str = "rvs> ";

/// ipvsadm lines offered by tab completion (the console verbs' come from their table).
const IPVSADM_PHRASES: &[&str] = &[
    "ipvsadm -L -n",
    "ipvsadm -L -n --stats",
    "ipvsadm -L -n --rate",
    "ipvsadm -L -c -n",
    "ipvsadm -L --timeout",
    "ipvsadm -S -n",
    "ipvsadm -Z",
    "ipvsadm -A -t ",
    "ipvsadm -a -t ",
    "ipvsadm -E -t ",
    "ipvsadm -e -t ",
    "ipvsadm -D -t ",
    "ipvsadm -d -t ",
    "ipvsadm --set ",
];

/// Completes the word under the cursor from the phrases that match what was typed.
pub fn complete(line: &str) -> (usize, Vec<String>) {
    let start = line.rfind(' ').map(|i| i + 1).unwrap_or(0);
    let typed_words = line[..start].split_whitespace().count();
    let phrases = VERBS.iter().flat_map(|v| v.phrases).chain(IPVSADM_PHRASES);
    let mut words: Vec<String> = phrases
        .filter(|p| p.starts_with(line))
        .filter_map(|p| p.split_whitespace().nth(typed_words))
        .map(str::to_string)
        .collect();
    words.dedup();
    (start, words)
}

struct ConsoleHelper;

impl Completer for ConsoleHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = complete(&line[..pos]);
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}

impl Hinter for ConsoleHelper {
    type Hint = String;
}
impl Highlighter for ConsoleHelper {}
impl Validator for ConsoleHelper {}
impl Helper for ConsoleHelper {}

/// The console's line editor on a terminal: the `rvs> ` prompt, history and tab completion
/// (Tab lists the choices, testpmd's habit). Gives each line to `each` until the end of
/// input (Ctrl-D) or `each` answers false; Ctrl-C only cancels the line being typed. Lines
/// pasted at once (bracketed paste keeps them in one edit) are given one by one.
pub fn edit_lines(mut each: impl FnMut(&str) -> bool) -> Result<(), String> {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<ConsoleHelper, DefaultHistory> =
        Editor::with_config(config).map_err(|e| e.to_string())?;
    editor.set_helper(Some(ConsoleHelper));
    loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if !line.lines().all(&mut each) {
                    return Ok(());
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Runs the prompt until `quit` or end of input (Ctrl-D); then sets `stop`.
pub fn run(appliance: &Arc<Appliance>, stop: &AtomicBool) {
    println!("rvs: interactive console; \"help\" lists the commands, \"quit\" stops rvs");
    let ran = edit_lines(|line| {
        let reply = appliance.console(line);
        print!("{}", reply.out);
        eprint!("{}", reply.err);
        let _ = std::io::stdout().flush();
        !stop.load(Ordering::Relaxed) && !appliance.quit.load(Ordering::Relaxed)
    });
    if let Err(e) = ran {
        eprintln!("rvs: console: {e}");
    }
    stop.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_offers_the_next_word() {
        assert_eq!(complete("sh").1, vec!["show"]);
        let (start, words) = complete("show port ");
        assert_eq!(start, 10);
        assert_eq!(words, vec!["info", "stats", "xstats"]);
        assert_eq!(complete("show port st").1, vec!["stats"]);
        assert_eq!(complete("ipvsadm -L -n --s").1, vec!["--stats"]);
        assert!(complete("nothing").1.is_empty());
    }
}

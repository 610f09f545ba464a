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
use std::path::{Path, PathBuf};
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

/// Lines of history the editor offers (the last of the file's, as bash's HISTSIZE).
const HISTORY_LINES: usize = 1000;

/// The console's history file, kept across sessions (`rvs -i` and `rvsadm --console`
/// share it): `$RVS_HISTFILE`, else `~/.rvs_history`; none when that is empty or there is
/// no home.
pub fn history_file() -> Option<PathBuf> {
    match std::env::var_os("RVS_HISTFILE") {
        Some(f) if f.is_empty() => None,
        Some(f) => Some(PathBuf::from(f)),
        None => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| Path::new(&h).join(".rvs_history")),
    }
}

/// The history a session starts with: the file's last [`HISTORY_LINES`] lines (none when
/// it cannot be read). A file grown past twice that is cut back to them.
fn load_history(editor: &mut Editor<ConsoleHelper, DefaultHistory>, file: &Path) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let kept = &lines[lines.len().saturating_sub(HISTORY_LINES)..];
    for line in kept {
        let _ = editor.add_history_entry(*line);
    }
    if lines.len() > 2 * HISTORY_LINES {
        let _ = std::fs::write(file, kept.join("\n") + "\n");
    }
}

/// Appends a line typed to the history file (created readable by its owner only).
fn remember(file: &Path, line: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file);
    if let Ok(mut f) = opened {
        let _ = writeln!(f, "{line}");
    }
}

/// An editor with the console's completion and history length.
fn new_editor() -> Result<Editor<ConsoleHelper, DefaultHistory>, String> {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .max_history_size(HISTORY_LINES)
        .map_err(|e| e.to_string())?
        .build();
    let mut editor = Editor::with_config(config).map_err(|e| e.to_string())?;
    editor.set_helper(Some(ConsoleHelper));
    Ok(editor)
}

/// The console's line editor on a terminal: the `rvs> ` prompt, history (kept in `history`
/// across sessions, when given) and tab completion (Tab lists the choices, testpmd's
/// habit). Gives each line to `each` until the end of input (Ctrl-D) or `each` answers
/// false; Ctrl-C only cancels the line being typed. Lines pasted at once (bracketed paste
/// keeps them in one edit) are given one by one.
pub fn edit_lines(
    history: Option<&Path>,
    mut each: impl FnMut(&str) -> bool,
) -> Result<(), String> {
    let mut editor = new_editor()?;
    if let Some(file) = history {
        load_history(&mut editor, file);
    }
    loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                for typed in line.lines().filter(|l| !l.trim().is_empty()) {
                    let _ = editor.add_history_entry(typed);
                    if let Some(file) = history {
                        remember(file, typed);
                    }
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
    let ran = edit_lines(history_file().as_deref(), |line| {
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

    /// The history file: its last lines start a session, each line typed is appended (one
    /// a line when pasted together), the file private to its owner, cut back when it grew
    /// past twice the lines kept; RVS_HISTFILE names it.
    #[test]
    fn history_is_kept_across_sessions() {
        use rustyline::history::{History, SearchDirection};
        let dir = std::env::temp_dir().join(format!("rvs-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("history");
        remember(&file, "show port stats");
        remember(&file, "sysctl -w net.ipv4.vs.pmtu_disc=0");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&file).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let editor = || {
            let mut e = new_editor().unwrap();
            load_history(&mut e, &file);
            e
        };
        let entries = |e: &Editor<ConsoleHelper, DefaultHistory>| -> Vec<String> {
            let h = e.history();
            (0..h.len())
                .filter_map(|i| h.get(i, SearchDirection::Forward).ok().flatten())
                .map(|r| r.entry.into_owned())
                .collect()
        };
        let e = editor();
        assert_eq!(
            entries(&e),
            ["show port stats", "sysctl -w net.ipv4.vs.pmtu_disc=0"]
        );
        let many: String = (0..2 * HISTORY_LINES + 5)
            .map(|i| format!("show {i}\n"))
            .collect();
        std::fs::write(&file, many).unwrap();
        let e = editor();
        assert_eq!(e.history().len(), HISTORY_LINES);
        assert_eq!(entries(&e).first().map(String::as_str), Some("show 1005"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), HISTORY_LINES, "cut back");
        assert!(text.ends_with("show 2004\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn completion_offers_the_next_word() {
        assert_eq!(complete("sh").1, vec!["show"]);
        let (start, words) = complete("show port ");
        assert_eq!(start, 10);
        // (A port number: `show port N rss-hash`.)
        assert_eq!(words, vec!["info", "summary", "stats", "xstats", "0"]);
        assert_eq!(complete("show port st").1, vec!["stats"]);
        assert_eq!(complete("ipvsadm -L -n --s").1, vec!["--stats"]);
        assert!(complete("nothing").1.is_empty());
    }
}

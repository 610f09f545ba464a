//! keepalived.conf's block syntax: `keyword args... {` ... `}` and plain `keyword args`
//! lines; `#` and `!` start comments; double quotes group words (an unterminated one is an
//! error); `include PATTERN` reads other files in place (`*`, `?` and `{a,b}` in the last
//! path component, sorted); `$NAME=value` defines a word that `$NAME` and `${NAME}` later
//! stand for; a line starting `@ID` is read only where the configuration id (the host name
//! up to its first dot, as keepalived's default) is ID, `@^ID` only where it is not. Bytes
//! that are not UTF-8 (Latin-1 comments) are read as replacement characters. The result is
//! a tree of statements, each with its file and line, for [`super::model`] to interpret.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub keyword: String,
    pub args: Vec<String>,
    pub block: Option<Vec<Statement>>,
    pub file: String,
    pub line: usize,
}

impl Statement {
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The first argument, or an error naming the statement.
    pub fn arg(&self, i: usize) -> Result<&str, String> {
        self.args
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("{}: {}: missing argument", self.at(), self.keyword))
    }

    pub fn children(&self) -> &[Statement] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// A word of the input; `brace` for an unquoted `{` or `}`.
#[derive(Debug, Clone)]
struct Word {
    file: std::rc::Rc<str>,
    line: usize,
    text: String,
    brace: bool,
}

/// Splits a line into words: comments end it, double quotes keep spaces, braces are words
/// of their own. An unterminated quote is an error, as keepalived refuses the line.
fn split(
    file: &std::rc::Rc<str>,
    line: usize,
    text: &str,
    out: &mut Vec<Word>,
) -> Result<(), String> {
    let mut cur = String::new();
    let (mut quoted, mut had_quote) = (false, false);
    let flush = |cur: &mut String, had_quote: &mut bool, out: &mut Vec<Word>| {
        if !cur.is_empty() || *had_quote {
            out.push(Word {
                file: file.clone(),
                line,
                text: std::mem::take(cur),
                brace: false,
            });
            *had_quote = false;
        }
    };
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                had_quote = true;
            }
            '#' | '!' if !quoted => break,
            '{' | '}' if !quoted => {
                flush(&mut cur, &mut had_quote, out);
                out.push(Word {
                    file: file.clone(),
                    line,
                    text: c.to_string(),
                    brace: true,
                });
            }
            c if c.is_whitespace() && !quoted => flush(&mut cur, &mut had_quote, out),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("{file}:{line}: unterminated quote"));
    }
    flush(&mut cur, &mut had_quote, out);
    Ok(())
}

/// The longest a line may grow to by `$NAME` expansion (a definition doubling itself line
/// after line would otherwise take all memory).
const MAX_EXPANDED_LINE: usize = 64 * 1024;

/// The configuration id `@ID` lines are matched against: keepalived's default, the host
/// name up to its first dot.
fn config_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .split('.')
        .next()
        .unwrap_or("")
        .to_string()
}

/// What is left of a line after its `@ID` / `@^ID` prefix, or None when the line is not for
/// this configuration id.
fn conditional<'a>(line: &'a str, id: &str) -> Option<&'a str> {
    let t = line.trim_start();
    let Some(rest) = t.strip_prefix('@') else {
        return Some(line);
    };
    let (want, negate) = match rest.strip_prefix('^') {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let end = want.find(char::is_whitespace).unwrap_or(want.len());
    let (tag, body) = want.split_at(end);
    ((tag == id) != negate).then_some(body)
}

/// Replaces `${NAME}` and `$NAME` with their definitions (unknown names stay as they are).
fn substitute(line: &str, defs: &[(String, String)]) -> String {
    if defs.is_empty() || !line.contains('$') {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = match after.strip_prefix('{') {
            Some(b) => match b.find('}') {
                Some(e) => (&b[..e], e + 2),
                None => ("", 0),
            },
            None => {
                let e = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..e], e)
            }
        };
        match defs.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) if !name.is_empty() => {
                out.push_str(v);
                rest = &after[used..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `$NAME=value` (a definition line): the name and the value.
fn definition(line: &str) -> Option<(String, String)> {
    let t = line.trim_start().strip_prefix('$')?;
    let (name, value) = t.split_once('=')?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| (name.to_string(), value.trim().to_string()))
}

/// Whether `name` matches a glob `pattern` (`*`, `?`).
fn glob_match(pattern: &[char], name: &[char]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some('*'), _) => {
            glob_match(&pattern[1..], name) || (!name.is_empty() && glob_match(pattern, &name[1..]))
        }
        (Some('?'), Some(_)) => glob_match(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob_match(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// `{a,b}` alternatives of a pattern, expanded (one level of braces at a time).
fn braces(pattern: &str) -> Vec<String> {
    let (Some(open), Some(close)) = (pattern.find('{'), pattern.find('}')) else {
        return vec![pattern.to_string()];
    };
    if close < open {
        return vec![pattern.to_string()];
    }
    pattern[open + 1..close]
        .split(',')
        .flat_map(|alt| {
            braces(&format!(
                "{}{alt}{}",
                &pattern[..open],
                &pattern[close + 1..]
            ))
        })
        .collect()
}

/// The files an `include` pattern names, sorted; a plain path is itself.
fn include_paths(pattern: &Path) -> Vec<PathBuf> {
    let text = pattern.display().to_string();
    if !text.contains(['*', '?', '{']) {
        return vec![pattern.to_path_buf()];
    }
    let mut out = Vec::new();
    for alt in braces(&text) {
        let p = PathBuf::from(&alt);
        let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else {
            continue;
        };
        if !name.contains(['*', '?']) {
            if p.exists() {
                out.push(p);
            }
            continue;
        }
        let pat: Vec<char> = name.chars().collect();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let n: Vec<char> = e.file_name().to_string_lossy().chars().collect();
                if glob_match(&pat, &n) && e.path().is_file() {
                    out.push(e.path());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A file's text; bytes that are not UTF-8 become replacement characters.
/// The most a configuration may take in all, its includes counted: bytes read, files, and
/// block nesting (keepalived's own files nest a few levels).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
pub const MAX_CONFIG_FILES: usize = 1024;
pub const MAX_BLOCK_DEPTH: usize = 32;

/// What the files read so far have taken.
#[derive(Default)]
struct Budget {
    bytes: u64,
    files: usize,
}

/// A regular file's text (a FIFO or device would block or never end), within the budget.
fn read_text_within(path: &Path, budget: &mut Budget) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    budget.files += 1;
    budget.bytes += meta.len();
    if budget.files > MAX_CONFIG_FILES || budget.bytes > MAX_CONFIG_BYTES {
        return Err(std::io::Error::other(format!(
            "the configuration with its includes exceeds {MAX_CONFIG_FILES} files or {} MiB",
            MAX_CONFIG_BYTES >> 20
        )));
    }
    use std::io::Read;
    let mut b = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut b)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// Reads `text` into words, expanding `include` lines (relative to `dir`), definitions and
/// conditional lines.
fn read_words(
    file: &str,
    text: &str,
    dir: Option<&Path>,
    depth: usize,
    defs: &mut Vec<(String, String)>,
    out: &mut Vec<Word>,
    budget: &mut Budget,
) -> Result<(), String> {
    if depth > 8 {
        return Err(format!("{file}: includes nested too deep"));
    }
    let name: std::rc::Rc<str> = file.into();
    let id = config_id();
    for (n, raw) in text.lines().enumerate() {
        let Some(line) = conditional(raw, &id) else {
            continue;
        };
        let too_long = |l: &str| {
            (l.len() > MAX_EXPANDED_LINE).then(|| {
                format!(
                    "{file}:{}: longer than {MAX_EXPANDED_LINE} bytes once $ definitions are expanded",
                    n + 1
                )
            })
        };
        if let Some(d) = definition(line) {
            let value = substitute(&d.1, defs);
            if let Some(e) = too_long(&value) {
                return Err(e);
            }
            defs.push((d.0, value));
            continue;
        }
        let line = substitute(line, defs);
        if let Some(e) = too_long(&line) {
            return Err(e);
        }
        // `include PATTERN`: the rest of the line, braces and all.
        let include = line
            .trim_start()
            .strip_prefix("include")
            .filter(|r| r.starts_with(char::is_whitespace))
            .map(|r| {
                r.split(['#', '!'])
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"')
            });
        if let Some(target) = include {
            if target.is_empty() {
                return Err(format!("{file}:{}: include: missing file", n + 1));
            }
            let p = PathBuf::from(target);
            let p = match dir {
                Some(d) if p.is_relative() => d.join(p),
                _ => p,
            };
            let paths = include_paths(&p);
            if paths.is_empty() {
                return Err(format!(
                    "{file}:{}: include {}: no such file",
                    n + 1,
                    p.display()
                ));
            }
            for p in paths {
                let t = read_text_within(&p, budget)
                    .map_err(|e| format!("{file}:{}: include {}: {e}", n + 1, p.display()))?;
                read_words(
                    &p.display().to_string(),
                    &t,
                    p.parent(),
                    depth + 1,
                    defs,
                    out,
                    budget,
                )?;
            }
            continue;
        }
        let mut w = Vec::new();
        split(&name, n + 1, &line, &mut w)?;
        out.extend(w);
    }
    Ok(())
}

/// Statements from `words[*i..]` up to the closing brace of the block (or the end);
/// `depth` counts the blocks around it.
fn block(words: &[Word], i: &mut usize, top: bool, depth: usize) -> Result<Vec<Statement>, String> {
    let mut out = Vec::new();
    loop {
        let Some(w) = words.get(*i) else {
            if top {
                return Ok(out);
            }
            let at = words
                .last()
                .map(|w| format!("{}:{}", w.file, w.line))
                .unwrap_or_default();
            return Err(format!("{at}: missing closing brace"));
        };
        *i += 1;
        if w.brace && w.text == "}" {
            if top {
                return Err(format!("{}:{}: unexpected closing brace", w.file, w.line));
            }
            return Ok(out);
        }
        if w.brace {
            return Err(format!("{}:{}: a block without a keyword", w.file, w.line));
        }
        let mut args = Vec::new();
        while let Some(a) = words.get(*i) {
            if a.brace || a.line != w.line || a.file != w.file {
                break;
            }
            args.push(a.text.clone());
            *i += 1;
        }
        let opens = words.get(*i).is_some_and(|a| a.brace && a.text == "{");
        let children = if opens {
            if depth >= MAX_BLOCK_DEPTH {
                return Err(format!(
                    "{}:{}: blocks nested deeper than {MAX_BLOCK_DEPTH}",
                    w.file, w.line
                ));
            }
            *i += 1;
            Some(block(words, i, false, depth + 1)?)
        } else {
            None
        };
        out.push(Statement {
            keyword: w.text.clone(),
            args,
            block: children,
            file: w.file.to_string(),
            line: w.line,
        });
    }
}

/// Parses a file (and its includes).
pub fn parse_file(path: &Path) -> Result<Vec<Statement>, String> {
    let mut budget = Budget::default();
    let text = read_text_within(path, &mut budget)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mut words = Vec::new();
    read_words(
        &path.display().to_string(),
        &text,
        path.parent(),
        0,
        &mut Vec::new(),
        &mut words,
        &mut budget,
    )?;
    block(&words, &mut 0, true, 0)
}

/// Parses text; `file` names it in messages.
pub fn parse_text(file: &str, text: &str) -> Result<Vec<Statement>, String> {
    let mut words = Vec::new();
    read_words(
        file,
        text,
        None,
        0,
        &mut Vec::new(),
        &mut words,
        &mut Budget::default(),
    )?;
    block(&words, &mut 0, true, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile files end in an error naming the place, never a crash or a hang: deep nesting,
    /// an include fan-out, a FIFO.
    #[test]
    fn nesting_fan_out_and_fifos_are_bounded() {
        let deep = "a {\n".repeat(6000) + &"}\n".repeat(6000);
        let e = parse_text("deep.conf", &deep).unwrap_err();
        assert_eq!(e, "deep.conf:33: blocks nested deeper than 32");
        let dir = std::env::temp_dir().join(format!("rvs-fanout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Seven levels of six includes each: 6^7 files if nothing stopped it.
        for level in 0..7 {
            let next = format!("l{}.conf", level + 1);
            let body = format!("include {next}\n").repeat(6) + "router_id x\n";
            std::fs::write(dir.join(format!("l{level}.conf")), body).unwrap();
        }
        std::fs::write(dir.join("l7.conf"), "router_id end\n").unwrap();
        let started = std::time::Instant::now();
        let e = parse_file(&dir.join("l0.conf")).unwrap_err();
        assert!(e.contains("exceeds 1024 files"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let fifo = dir.join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        std::fs::write(dir.join("f.conf"), "include fifo\n").unwrap();
        let e = parse_file(&dir.join("f.conf")).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// keepalived 2.2.7 accepts each of these (checked with `keepalived -t`).
    #[test]
    fn definitions_conditionals_latin1_and_quotes() {
        let id = config_id();
        let text = format!(
            "$IFACE=eth0\n$VIP=10.0.0.100\n$PAIR=${{VIP}} 80\nvirtual_server $PAIR {{\n  interface $IFACE\n  real_server ${{VIP}}1 80\n}}\n@{id} router_id mine\n@^{id} router_id not_mine\n@x{id}y router_id other\n@^x{id}y smtp_server 10.0.0.1\n"
        );
        let t = parse_text("k.conf", &text).unwrap();
        assert_eq!(t[0].args, ["10.0.0.100", "80"]);
        assert_eq!(t[0].children()[0].args, ["eth0"]);
        assert_eq!(t[0].children()[1].args, ["10.0.0.1001", "80"]);
        let rest: Vec<(&str, &str)> = t[1..]
            .iter()
            .map(|s| (s.keyword.as_str(), s.args[0].as_str()))
            .collect();
        assert_eq!(rest, [("router_id", "mine"), ("smtp_server", "10.0.0.1")]);
        assert_eq!(t[1].line, 8, "lines keep their numbers");
        // An unknown name stays as written.
        let t = parse_text("k.conf", "$A=1\nmisc_path \"/bin/x $HOME $A\"\n").unwrap();
        assert_eq!(t[0].args, ["/bin/x $HOME 1"]);
        assert_eq!(
            parse_text("k.conf", "global_defs {\n  router_id \"open\n}\n").unwrap_err(),
            "k.conf:2: unterminated quote"
        );
        let bomb: String = std::iter::once("$A=xxxxxxxx\n".to_string())
            .chain((0..40).map(|_| "$A=$A$A\n".to_string()))
            .collect();
        assert!(parse_text("k.conf", &bomb)
            .unwrap_err()
            .contains("once $ definitions are expanded"));
    }

    #[test]
    fn include_patterns_and_latin1_files() {
        let dir = std::env::temp_dir().join(format!("rvs-kinc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        for (f, addr) in [
            ("b.conf", "10.0.0.2"),
            ("a.conf", "10.0.0.1"),
            ("c.txt", "10.0.0.3"),
        ] {
            std::fs::write(
                dir.join("conf.d").join(f),
                format!("virtual_server {addr} 80 {{\n}}\n"),
            )
            .unwrap();
        }
        let main = dir.join("keepalived.conf");
        std::fs::write(
            &main,
            b"! caf\xe9 in Latin-1\ninclude conf.d/*.conf\ninclude conf.d/{c.txt,none}\n",
        )
        .unwrap();
        let t = parse_file(&main).unwrap();
        let addrs: Vec<&str> = t.iter().map(|s| s.args[0].as_str()).collect();
        assert_eq!(
            addrs,
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
            "sorted, braces expanded"
        );
        assert!(t[0].file.ends_with("conf.d/a.conf"));
        std::fs::write(&main, "include conf.d/*.nothing\n").unwrap();
        assert!(parse_file(&main).unwrap_err().contains("no such file"));
        assert_eq!(braces("a{1,2}b{x,y}"), ["a1bx", "a1by", "a2bx", "a2by"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn blocks_lines_comments_and_quotes() {
        let t = parse_text(
            "k.conf",
            "global_defs {\n  enable_script_security # comment\n}\n! a bang comment\nvirtual_server 10.0.0.1 80 {\n  real_server 10.0.0.2 80 { weight 2 }\n  notify_up \"/bin/x y\"\n}\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].children()[0].keyword, "enable_script_security");
        let vs = &t[1];
        assert_eq!(
            (vs.keyword.as_str(), vs.args.clone()),
            ("virtual_server", vec!["10.0.0.1".to_string(), "80".into()])
        );
        assert_eq!(vs.line, 5);
        let rs = &vs.children()[0];
        assert_eq!(rs.children()[0].args, vec!["2"]);
        assert_eq!(vs.children()[1].args, vec!["/bin/x y"]);
    }

    #[test]
    fn unbalanced_braces_name_the_line() {
        assert_eq!(
            parse_text("k.conf", "a {\n b 1\n").unwrap_err(),
            "k.conf:2: missing closing brace"
        );
        assert_eq!(
            parse_text("k.conf", "a 1\n}\n").unwrap_err(),
            "k.conf:2: unexpected closing brace"
        );
    }
}

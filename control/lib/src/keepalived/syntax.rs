//! keepalived.conf's block syntax: `keyword args... {` ... `}` and plain `keyword args`
//! lines; `#` and `!` start comments; double quotes group words; `include FILE` (glob-free)
//! reads another file in place. The result is a tree of statements, each with its file
//! and line, for [`super::model`] to interpret.

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
/// of their own.
fn split(file: &std::rc::Rc<str>, line: usize, text: &str, out: &mut Vec<Word>) {
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
    flush(&mut cur, &mut had_quote, out);
}

/// Reads `text` into words, expanding `include FILE` lines (relative to `dir`).
fn read_words(
    file: &str,
    text: &str,
    dir: Option<&Path>,
    depth: usize,
    out: &mut Vec<Word>,
) -> Result<(), String> {
    if depth > 8 {
        return Err(format!("{file}: includes nested too deep"));
    }
    let name: std::rc::Rc<str> = file.into();
    for (n, line) in text.lines().enumerate() {
        let mut w = Vec::new();
        split(&name, n + 1, line, &mut w);
        if w.first().is_some_and(|x| !x.brace && x.text == "include") {
            let target = w
                .get(1)
                .ok_or_else(|| format!("{file}:{}: include: missing file", n + 1))?;
            let p = PathBuf::from(&target.text);
            let p = match dir {
                Some(d) if p.is_relative() => d.join(p),
                _ => p,
            };
            let t = std::fs::read_to_string(&p)
                .map_err(|e| format!("{file}:{}: include {}: {e}", n + 1, p.display()))?;
            read_words(&p.display().to_string(), &t, p.parent(), depth + 1, out)?;
            continue;
        }
        out.extend(w);
    }
    Ok(())
}

/// Statements from `words[*i..]` up to the closing brace of the block (or the end).
fn block(words: &[Word], i: &mut usize, top: bool) -> Result<Vec<Statement>, String> {
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
            *i += 1;
            Some(block(words, i, false)?)
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
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mut words = Vec::new();
    read_words(
        &path.display().to_string(),
        &text,
        path.parent(),
        0,
        &mut words,
    )?;
    block(&words, &mut 0, true)
}

/// Parses text; `file` names it in messages.
pub fn parse_text(file: &str, text: &str) -> Result<Vec<Statement>, String> {
    let mut words = Vec::new();
    read_words(file, text, None, 0, &mut words)?;
    block(&words, &mut 0, true)
}

#[cfg(test)]
mod tests {
    use super::*;

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

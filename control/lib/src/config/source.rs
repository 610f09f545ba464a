//! Where a configuration came from, and its errors: file, line, field, message.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

/// A configuration error: where, which field, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; None when the error is about the file as a whole.
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The source text of a config file, to turn byte spans into lines and field paths.
#[derive(Debug, Clone)]
pub struct Source {
    pub file: String,
    pub text: String,
}

impl Source {
    pub fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text[..offset].bytes().filter(|&b| b == b'\n').count() + 1
    }

    pub fn error(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: Some(self.line_of(span.start)),
            field: field.into(),
            message: message.into(),
        }
    }

    /// `ip` as written at `span`, unless it is an IPv4-mapped IPv6 address (::ffff:a.b.c.d):
    /// no packet carries one (the data plane drops such headers as martian), so it could
    /// only alias the IPv4 address; refused with the form to write instead.
    pub(super) fn unmapped(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        ip: std::net::IpAddr,
    ) -> Result<std::net::IpAddr, ConfigError> {
        match ip {
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Err(self.error(
                    span,
                    field,
                    format!("{v6} is an IPv4-mapped IPv6 address: write {v4}"),
                )),
                None => Ok(ip),
            },
            v4 => Ok(v4),
        }
    }

    /// The dotted path of the key at `offset` (`port[1].rx_queues`), read from the text:
    /// the closest table header above and the key on the line itself.
    pub(super) fn field_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line = self.text[line_start..line_end].trim();
        let mut table = String::new();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for l in self.text[..line_start].lines().chain(std::iter::once(line)) {
            let l = l.trim();
            if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
                let name = name.trim().to_string();
                let n = counts.entry(name.clone()).or_insert(0);
                table = format!("{name}[{n}]");
                *n += 1;
            } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
                table = name.trim().to_string();
            }
        }
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .filter(|k| !k.starts_with('['));
        match (table.is_empty(), key) {
            (_, Some(k)) if table.is_empty() => k,
            (false, Some(k)) => format!("{table}.{k}"),
            _ => table,
        }
    }
}

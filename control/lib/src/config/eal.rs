//! The `[eal]` section: lcores (checked before they are expanded), hugepages, memory,
//! file prefix, log level.

use super::*;

/// Whether EAL runs on hugepages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hugepages {
    /// Hugepages when the system has free ones, else `--no-huge` (with a notice).
    #[default]
    Auto,
    On,
    Off,
}

impl<'de> Deserialize<'de> for Hugepages {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Hugepages;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Hugepages, E> {
                Ok(if v { Hugepages::On } else { Hugepages::Off })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Hugepages, E> {
                match v {
                    "auto" => Ok(Hugepages::Auto),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEal {
    pub(super) lcores: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) hugepages: Hugepages,
    pub(super) memory_mb: Option<Spanned<u32>>,
    #[serde(default = "default_prefix")]
    pub(super) file_prefix: Spanned<String>,
    #[serde(default = "default_log_level")]
    pub(super) log_level: Spanned<String>,
    #[serde(default)]
    pub(super) extra_args: Vec<String>,
}

impl Default for RawEal {
    fn default() -> Self {
        RawEal {
            lcores: None,
            hugepages: Hugepages::Auto,
            memory_mb: None,
            file_prefix: default_prefix(),
            log_level: default_log_level(),
            extra_args: Vec::new(),
        }
    }
}

pub(super) fn default_prefix() -> Spanned<String> {
    Spanned::new(0..0, "rvs".into())
}

pub(super) fn default_log_level() -> Spanned<String> {
    Spanned::new(0..0, "notice".into())
}

/// Validated EAL settings.
/// EAL's log levels by the names `--log-level` takes, most severe first.
pub const LOG_LEVELS: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    /// The lcores in use; the first is the main (control) lcore.
    pub lcores: Vec<u32>,
    /// The `--lcores` form (`0@0,1@1,2@1`) when lcores are placed on CPUs explicitly.
    pub placement: Option<String>,
    pub hugepages: Hugepages,
    pub memory_mb: Option<u32>,
    pub file_prefix: String,
    /// One of [`LOG_LEVELS`] (EAL's `--log-level` names).
    pub log_level: String,
    pub extra_args: Vec<String>,
}

/// EAL's RTE_MAX_LCORE as Debian builds DPDK.
pub(super) const MAX_LCORES: u32 = 128;

/// Parses an EAL core list: `0-3`, `0,2,4`, `0-1,6`, or with CPU placement as EAL's
/// `--lcores` takes it: `0@0,1@1,2@1` (lcore 2 runs on CPU 1).
pub fn parse_lcore_list(s: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let part = match part.split_once('@') {
            Some((lcore, cpu)) => {
                cpu.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{cpu:?} is not a CPU number"))?;
                lcore
            }
            None => part,
        };
        let num = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("{t:?} is not an lcore number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("range {part:?} runs backwards"));
                }
                if b >= MAX_LCORES {
                    return Err(format!("lcores go up to {}", MAX_LCORES - 1));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    let unique: BTreeSet<_> = out.iter().collect();
    if unique.len() != out.len() {
        return Err("an lcore is listed twice".into());
    }
    if out.iter().any(|&l| l >= MAX_LCORES) {
        return Err(format!("lcores go up to {}", MAX_LCORES - 1));
    }
    Ok(out)
}

pub(super) fn validate_eal(source: &Source, raw: RawEal) -> Result<EalConfig, ConfigError> {
    let lcores = match &raw.lcores {
        Some(l) => {
            parse_lcore_list(l.get_ref()).map_err(|m| source.error(l.span(), "eal.lcores", m))?
        }
        None => vec![0, 1],
    };
    if lcores.len() < 2 {
        let span = raw.lcores.as_ref().map_or(0..0, |l| l.span());
        return Err(source.error(
            span,
            "eal.lcores",
            "needs a main lcore and at least one worker lcore",
        ));
    }
    let log_level = raw.log_level.get_ref().clone();
    if !LOG_LEVELS.contains(&log_level.as_str()) {
        return Err(source.error(
            raw.log_level.span(),
            "eal.log_level",
            format!("unknown level {log_level:?} ({})", LOG_LEVELS.join(", ")),
        ));
    }
    let prefix = raw.file_prefix.get_ref();
    if prefix.is_empty()
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        return Err(source.error(
            raw.file_prefix.span(),
            "eal.file_prefix",
            "letters, digits, '-' and '_' only",
        ));
    }
    if let Some(m) = &raw.memory_mb {
        if *m.get_ref() < 64 {
            return Err(source.error(m.span(), "eal.memory_mb", "at least 64 MB"));
        }
    }
    let placement = raw
        .lcores
        .as_ref()
        .map(|l| l.get_ref().replace(' ', ""))
        .filter(|l| l.contains('@'));
    Ok(EalConfig {
        lcores,
        placement,
        hugepages: raw.hugepages,
        memory_mb: raw.memory_mb.map(|m| m.into_inner()),
        file_prefix: prefix.clone(),
        log_level,
        extra_args: raw.extra_args,
    })
}

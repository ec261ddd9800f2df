//! A span-aware reader over a parsed TOML document.
//!
//! serde stops at the first error; operators want every problem in one run.
//! This reader walks `toml::de::DeTable` (which keeps byte spans), records each
//! problem with its key path and position, and keeps going. Every key a
//! reader hands out is marked used; `finish` reports the rest as unknown.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One problem in a config file, located for a human.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.key, self.reason
        )
    }
}

/// Collects problems and turns byte offsets into line:column.
pub struct Problems<'s> {
    file: String,
    line_starts: Vec<usize>,
    source: &'s str,
    list: Vec<(usize, ConfigProblem)>,
}

impl<'s> Problems<'s> {
    pub fn new(file: impl Into<String>, source: &'s str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(memchr::memchr_iter(b'\n', source.as_bytes()).map(|i| i + 1));
        Self {
            file: file.into(),
            line_starts,
            source,
            list: Vec::new(),
        }
    }

    pub fn push(&mut self, span: Range<usize>, key: &str, reason: impl Into<String>) {
        let offset = span.start.min(self.source.len());
        let line_index = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let line_start = self.line_starts[line_index];
        let column = self.source[line_start..offset].chars().count() + 1;
        self.list.push((
            offset,
            ConfigProblem {
                file: self.file.clone(),
                line: line_index + 1,
                column,
                key: key.to_string(),
                reason: reason.into(),
            },
        ));
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems in file order.
    pub fn into_sorted(mut self) -> Vec<ConfigProblem> {
        self.list.sort_by_key(|(offset, _)| *offset);
        self.list.into_iter().map(|(_, p)| p).collect()
    }
}

/// A value with the key path and span it was read from, for later checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub key: String,
    pub span: Range<usize>,
}

/// Reads one TOML table; remembers which keys were consumed.
pub struct TableReader<'a, 'i> {
    path: String,
    table: &'a DeTable<'i>,
    span: Range<usize>,
    used: Vec<&'a str>,
    /// Every key a reader asked for, present or not: the known keys an
    /// unknown one is compared with.
    asked: Vec<String>,
}

impl<'a, 'i> TableReader<'a, 'i> {
    pub fn root(table: &'a Spanned<DeTable<'i>>) -> Self {
        Self {
            path: String::new(),
            table: table.get_ref(),
            span: table.span(),
            used: Vec::new(),
            asked: Vec::new(),
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The full dotted path of `key` inside this table.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.get(key).is_some()
    }

    /// Where `key`'s value is, without reading it (to point a problem
    /// found across sections at one of them).
    pub fn span_of(&self, key: &str) -> Option<Range<usize>> {
        self.table.get(key).map(|v| v.span())
    }

    fn take(&mut self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        if !self.asked.iter().any(|a| a == key) {
            self.asked.push(key.to_string());
        }
        let (k, v) = self.table.get_key_value(key)?;
        self.used.push(k.get_ref().as_ref());
        Some(v)
    }

    fn wrong_type(&self, p: &mut Problems, key: &str, v: &Spanned<DeValue>, want: &str) {
        p.push(
            v.span(),
            &self.key_path(key),
            format!("expected {want}, found {}", v.get_ref().type_str()),
        );
    }

    fn located<T>(&self, key: &str, value: T, span: Range<usize>) -> Located<T> {
        Located {
            value,
            key: self.key_path(key),
            span,
        }
    }

    pub fn string(&mut self, p: &mut Problems, key: &str) -> Option<Located<String>> {
        let v = self.take(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(self.located(key, s.to_string(), v.span())),
            _ => {
                self.wrong_type(p, key, v, "a string");
                None
            }
        }
    }

    pub fn float(&mut self, p: &mut Problems, key: &str) -> Option<Located<f64>> {
        let v = self.take(key)?;
        match number(v.get_ref()) {
            Some(x) => Some(self.located(key, x, v.span())),
            None => {
                self.wrong_type(p, key, v, "a number");
                None
            }
        }
    }

    /// A number, or the string `"auto"` (None).
    pub fn float_or_auto(&mut self, p: &mut Problems, key: &str) -> Option<Located<Option<f64>>> {
        let v = self.take(key)?;
        match (number(v.get_ref()), v.get_ref()) {
            (Some(x), _) => Some(self.located(key, Some(x), v.span())),
            (None, DeValue::String(s)) if s.as_ref() == "auto" => {
                Some(self.located(key, None, v.span()))
            }
            _ => {
                self.wrong_type(p, key, v, "a number or \"auto\"");
                None
            }
        }
    }

    pub fn uint(&mut self, p: &mut Problems, key: &str) -> Option<Located<u64>> {
        let v = self.take(key)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .and_then(|x| u64::try_from(x).ok()),
            _ => None,
        };
        match parsed {
            Some(x) => Some(self.located(key, x, v.span())),
            None => {
                self.wrong_type(p, key, v, "a non-negative integer");
                None
            }
        }
    }

    pub fn boolean(&mut self, p: &mut Problems, key: &str) -> Option<Located<bool>> {
        let v = self.take(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(self.located(key, *b, v.span())),
            _ => {
                self.wrong_type(p, key, v, "true or false");
                None
            }
        }
    }

    /// A duration written as a string with units: "250ms", "2s", "15m", "1h", "8d".
    pub fn duration(&mut self, p: &mut Problems, key: &str) -> Option<Located<Duration>> {
        let s = self.string(p, key)?;
        match humantime::parse_duration(s.value.trim()) {
            Ok(d) if !d.is_zero() => Some(Located {
                value: d,
                key: s.key,
                span: s.span,
            }),
            Ok(_) => {
                p.push(s.span, &s.key, "duration must be greater than zero");
                None
            }
            Err(e) => {
                p.push(
                    s.span,
                    &s.key,
                    format!(
                        "invalid duration {:?} ({e}); write e.g. \"2s\", \"15m\", \"1h\"",
                        s.value
                    ),
                );
                None
            }
        }
    }

    pub fn string_array(&mut self, p: &mut Problems, key: &str) -> Option<Vec<Located<String>>> {
        let v = self.take(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(p, key, v, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{}[{i}]", self.key_path(key));
            match item.get_ref() {
                DeValue::String(s) => out.push(Located {
                    value: s.to_string(),
                    key: item_key,
                    span: item.span(),
                }),
                other => p.push(
                    item.span(),
                    &item_key,
                    format!("expected a string, found {}", other.type_str()),
                ),
            }
        }
        Some(out)
    }

    pub fn table(&mut self, p: &mut Problems, key: &str) -> Option<TableReader<'a, 'i>> {
        let v = self.take(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(TableReader {
                path: self.key_path(key),
                table: t,
                span: v.span(),
                used: Vec::new(),
                asked: Vec::new(),
            }),
            _ => {
                self.wrong_type(p, key, v, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[key]]`); a single table is accepted as one element.
    pub fn tables(&mut self, p: &mut Problems, key: &str) -> Vec<TableReader<'a, 'i>> {
        let Some(v) = self.take(key) else {
            return Vec::new();
        };
        let base = self.key_path(key);
        match v.get_ref() {
            DeValue::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_key = format!("{base}[{i}]");
                    match item.get_ref() {
                        DeValue::Table(t) => out.push(TableReader {
                            path: item_key,
                            table: t,
                            span: item.span(),
                            used: Vec::new(),
                            asked: Vec::new(),
                        }),
                        other => p.push(
                            item.span(),
                            &item_key,
                            format!("expected a table, found {}", other.type_str()),
                        ),
                    }
                }
                out
            }
            DeValue::Table(t) => vec![TableReader {
                path: base,
                table: t,
                span: v.span(),
                used: Vec::new(),
                asked: Vec::new(),
            }],
            _ => {
                self.wrong_type(p, key, v, "an array of tables");
                Vec::new()
            }
        }
    }

    /// Reports every key of this table that no reader method asked for.
    pub fn finish(self, p: &mut Problems) {
        for (k, _) in self.table.iter() {
            let name: &str = k.get_ref().as_ref();
            if !self.used.contains(&name) {
                let reason = match nearest(name, self.asked.iter().map(String::as_str)) {
                    Some(near) => format!("unknown key; did you mean `{near}`?"),
                    None => "unknown key".to_string(),
                };
                p.push(k.span(), &self.key_path(name), reason);
            }
        }
    }
}

/// The candidate nearest to `word` when it is close enough to be a typo
/// (a normalized Damerau-Levenshtein similarity of 0.7 or more, or the same letters
/// in another case).
pub(super) fn nearest<'c>(
    word: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .map(|c| {
            let score = if c.eq_ignore_ascii_case(word) {
                1.0
            } else {
                strsim::normalized_damerau_levenshtein(&word.to_lowercase(), &c.to_lowercase())
            };
            (c, score)
        })
        .filter(|(_, score)| *score >= 0.7)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

fn number(v: &DeValue) -> Option<f64> {
    match v {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(|x| x as f64),
        DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
        _ => None,
    }
}

pub(super) fn enum_value<T>(
    p: &mut Problems,
    s: &Located<String>,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &str,
) -> Option<T> {
    let v = parse(&s.value);
    if v.is_none() {
        p.push(
            s.span.clone(),
            &s.key,
            format!("expected {allowed}, got {:?}", s.value),
        );
    }
    v
}

pub(super) fn socket_addr(p: &mut Problems, s: &Located<String>) -> Option<SocketAddr> {
    match s.value.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            p.push(
                s.span.clone(),
                &s.key,
                format!("{:?} is not an address like 127.0.0.1:8125", s.value),
            );
            None
        }
    }
}

pub(super) fn positive_size(p: &mut Problems, v: Option<Located<u64>>, default: usize) -> usize {
    match v {
        Some(v) if v.value == 0 => {
            p.push(v.span, &v.key, "must be greater than zero");
            default
        }
        Some(v) => v.value as usize,
        None => default,
    }
}

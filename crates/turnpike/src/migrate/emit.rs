//! Writing the migrated `turnserver.toml` by hand: values are encoded by the `toml` crate
//! (quoting, escapes), and every key carries a comment naming the coturn line(s) it came
//! from, so an operator can check the result line by line. Secrets and passwords are
//! never echoed in comments.

use std::fmt::Write as _;

/// A value: one scalar, or a list whose elements each name their line.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A string, integer or boolean.
    Scalar(toml::Value),
    /// A list; each element is already TOML text (a string or an inline table) and comes
    /// from one line.
    List(Vec<(String, usize)>),
}

/// One key of a section.
#[derive(Debug, Clone)]
struct Item {
    key: &'static str,
    value: Value,
    /// Where it came from and how (`turnserver.conf:12 listening-port`).
    comment: Vec<String>,
}

/// A TOML document in the making, sections in the order they are first used.
#[derive(Debug, Default)]
pub(crate) struct Document {
    header: Vec<String>,
    sections: Vec<(&'static str, Vec<String>, Vec<Item>)>,
}

/// A string as TOML text.
pub(crate) fn string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

impl Document {
    /// Adds a comment line to the top of the file.
    pub(crate) fn header(&mut self, line: impl Into<String>) {
        self.header.push(line.into());
    }

    fn section(&mut self, name: &'static str) -> &mut (&'static str, Vec<String>, Vec<Item>) {
        let i = match self.sections.iter().position(|s| s.0 == name) {
            Some(i) => i,
            None => {
                self.sections.push((name, Vec::new(), Vec::new()));
                self.sections.len() - 1
            }
        };
        &mut self.sections[i]
    }

    /// Adds a comment under a section's header.
    pub(crate) fn note(&mut self, section: &'static str, line: impl Into<String>) {
        self.section(section).1.push(line.into());
    }

    /// Sets `section.key`, with comment lines above it.
    pub(crate) fn set(
        &mut self,
        section: &'static str,
        key: &'static str,
        value: Value,
        comment: Vec<String>,
    ) {
        let items = &mut self.section(section).2;
        items.retain(|i| i.key != key);
        items.push(Item {
            key,
            value,
            comment,
        });
    }

    /// The document as TOML text; `file` names the source in list comments.
    pub(crate) fn render(&self, file: &str) -> String {
        let mut out = String::new();
        for line in &self.header {
            let _ = writeln!(out, "# {line}");
        }
        for (name, notes, items) in &self.sections {
            let _ = writeln!(out, "\n[{name}]");
            for n in notes {
                let _ = writeln!(out, "# {n}");
            }
            for item in items {
                for c in &item.comment {
                    let _ = writeln!(out, "# {c}");
                }
                match &item.value {
                    Value::Scalar(v) => {
                        let _ = writeln!(out, "{} = {v}", item.key);
                    }
                    Value::List(list) if list.is_empty() => {
                        let _ = writeln!(out, "{} = []", item.key);
                    }
                    Value::List(list) => {
                        let _ = writeln!(out, "{} = [", item.key);
                        for (text, line) in list {
                            let from = if *line == 0 {
                                "coturn's default".to_owned()
                            } else {
                                format!("{file}:{line}")
                            };
                            let _ = writeln!(out, "    {text}, # {from}");
                        }
                        let _ = writeln!(out, "]");
                    }
                }
            }
        }
        out
    }
}

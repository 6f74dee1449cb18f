//! Where each value of a YAML document starts, by its path in the document
//! (`deploy[1].needs[0]`).
//!
//! serde reports where a value failed to deserialize, but once the plan is
//! typed the positions are gone, and the checks that come after (a `needs`
//! naming no step, a context that does not exist) must still point at the
//! line. A second, cheap pass over the parser's events records them.

use saphyr_parser::{Event, Parser, Span};
use std::collections::HashMap;

/// A place in a file: 1-based line and column, as editors count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// The start of every value in a document, keyed by its path.
#[derive(Debug, Default)]
pub struct Positions {
    values: HashMap<String, Position>,
    /// Where each mapping key starts, by the path of its value: an unknown
    /// field is pointed at by its key.
    keys: HashMap<String, Position>,
}

enum Frame {
    Mapping {
        path: String,
        /// The key whose value comes next; `None` while a key is awaited.
        key: Option<String>,
    },
    Sequence {
        path: String,
        next: usize,
    },
}

impl Positions {
    /// Indexes a document. A document the parser rejects gives what was
    /// read before the error: serde reports that error itself.
    pub fn index(text: &str) -> Positions {
        let mut positions = Positions::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            match event {
                Event::Scalar(value, ..) => match node_path(&mut stack, Some(&value)) {
                    Some(path) => positions.record(path, &span),
                    None => {
                        if let Some(Frame::Mapping {
                            path,
                            key: Some(key),
                        }) = stack.last()
                        {
                            let at = if path.is_empty() {
                                key.clone()
                            } else {
                                format!("{path}.{key}")
                            };
                            positions.keys.entry(at).or_insert(position(&span));
                        }
                    }
                },
                Event::Alias(_) => {
                    if let Some(path) = node_path(&mut stack, None) {
                        positions.record(path, &span);
                    }
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_mapping = matches!(event, Event::MappingStart(..));
                    // A collection used as a key has no path of its own.
                    let path = node_path(&mut stack, None).unwrap_or_else(|| "?".to_string());
                    positions.record(path.clone(), &span);
                    stack.push(if is_mapping {
                        Frame::Mapping { path, key: None }
                    } else {
                        Frame::Sequence { path, next: 0 }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        positions
    }
}

fn position(span: &Span) -> Position {
    Position {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

/// The path of the node that starts now, or `None` when it is a mapping's
/// key (then remembered as the key of the value to come).
fn node_path(stack: &mut [Frame], scalar: Option<&str>) -> Option<String> {
    match stack.last_mut() {
        None => Some(String::new()),
        Some(Frame::Sequence { path, next }) => {
            let at = format!("{path}[{next}]");
            *next += 1;
            Some(at)
        }
        Some(Frame::Mapping { path, key }) => match key.take() {
            Some(key) if path.is_empty() => Some(key),
            Some(key) => Some(format!("{path}.{key}")),
            None => {
                *key = Some(scalar.unwrap_or("?").to_string());
                None
            }
        },
    }
}

impl Positions {
    fn record(&mut self, path: String, span: &Span) {
        self.values.entry(path).or_insert(position(span));
    }

    /// Where the key of the value at `path` starts; where its value (or
    /// its nearest enclosing value) starts when there is no such key.
    pub fn find_key(&self, path: &str) -> Position {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.find(path))
    }

    /// Where the value at `path` starts; for a value that is not there
    /// (a missing field), where its nearest enclosing value starts.
    pub fn find(&self, path: &str) -> Position {
        let mut path = path;
        loop {
            if let Some(position) = self.values.get(path) {
                return *position;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None if !path.is_empty() => path = "",
                None => return Position { line: 1, column: 1 },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
cluster:
  name: demo
deploy:
  - name: db
    needs: [cache, queue]
  - name: cache
    wait:
      - rollout: deployment/cache
";

    #[test]
    fn finds_values_by_path() {
        let positions = Positions::index(DOC);
        let at = |path| {
            let p = positions.find(path);
            (p.line, p.column)
        };
        assert_eq!(at("cluster.name"), (2, 9));
        assert_eq!(at("deploy[0].name"), (4, 11));
        assert_eq!(at("deploy[0].needs[1]"), (5, 20));
        assert_eq!(at("deploy[1].wait[0].rollout"), (8, 18));
        let key = positions.find_key("deploy[0].needs");
        assert_eq!((key.line, key.column), (5, 5));
    }

    #[test]
    fn a_missing_value_points_at_its_parent() {
        let positions = Positions::index(DOC);
        assert_eq!(
            positions.find("deploy[1].kustomize"),
            positions.find("deploy[1]")
        );
        assert_eq!(
            positions.find("budget.memory"),
            Position { line: 1, column: 1 }
        );
    }
}

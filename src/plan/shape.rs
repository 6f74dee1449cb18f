//! The YAML's shape, checked with every problem collected: from the parsed
//! document to a [`PlanFile`].
//!
//! serde stops at the first value that does not fit, so a plan with an
//! unknown field, a number where a name goes and a broken rule further on
//! would be fixed one error per run. Instead the document is read into a
//! tree first; each time serde rejects a value, the problem is recorded
//! at its path and the tree repaired (the unknown field dropped, the
//! mistyped scalar taken as the text it spells, else the value dropped),
//! and serde tries again. When the repaired tree fits, the rules in
//! `resolve` still run on it, so their problems come in the same report;
//! when it cannot be repaired (a required field is missing), the shape
//! problems alone are reported.

use super::Problem;
use super::file::PlanFile;
use super::positions::Positions;
use serde_norway::Value;

/// More repairs than any plan has fields: a guard against a loop, never
/// reached by a real file.
const MAX_REPAIRS: usize = 200;

/// The typed plan, when the (repaired) document fits, and every shape
/// problem found on the way. `repaired` lists the paths whose values were
/// changed or dropped: rules about them would only repeat the problem.
pub(super) struct Shaped {
    pub plan: Option<PlanFile>,
    pub problems: Vec<Problem>,
    pub repaired: Vec<String>,
}

pub(super) fn shape(mut document: Value, positions: &Positions) -> Shaped {
    let mut problems = Vec::new();
    let mut repaired: Vec<String> = Vec::new();
    // A value dropped from a mapping: a "missing field" for it afterwards
    // is the same problem again.
    let mut dropped: Vec<(String, String)> = Vec::new();
    for _ in 0..MAX_REPAIRS {
        let error = match serde_path_to_error::deserialize::<_, PlanFile>(document.clone()) {
            Ok(plan) => {
                return Shaped {
                    plan: Some(plan),
                    problems,
                    repaired,
                };
            }
            Err(error) => error,
        };
        let path = path_of(error.path());
        let message = error.into_inner().to_string();
        if let Some(field) = quoted_after(&message, "unknown field `") {
            // The path may or may not end with the key: said of the mapping.
            let path = match split_last(&path) {
                Some((parent, key)) if key == field => parent,
                _ => path,
            };
            let key_path = join(&path, &field);
            let at = positions.find_key(&key_path);
            problems.push(problem(at, &path, message));
            if remove(&mut document, &path, &field) {
                repaired.push(key_path);
                continue;
            }
            break;
        }
        if let Some(field) = quoted_after(&message, "missing field `") {
            if !dropped.contains(&(path.clone(), field)) {
                problems.push(problem(positions.find(&path), &path, message));
            }
            break;
        }
        problems.push(problem(positions.find(&path), &path, message));
        if repaired.contains(&path) {
            // Already taken as text and still wrong: drop it.
            let Some((parent, key)) = split_last(&path) else {
                break;
            };
            if !remove(&mut document, &parent, &key) {
                break;
            }
            dropped.push((parent, key));
            // The problem was recorded twice: once as the scalar, once as
            // its text. The first says what was written.
            problems.pop();
            continue;
        }
        repaired.push(path.clone());
        if !as_text(&mut document, &path) {
            let Some((parent, key)) = split_last(&path) else {
                break;
            };
            if !remove(&mut document, &parent, &key) {
                break;
            }
            dropped.push((parent, key));
        }
    }
    Shaped {
        plan: None,
        problems,
        repaired,
    }
}

fn problem(at: super::Position, path: &str, message: String) -> Problem {
    Problem {
        line: at.line,
        column: at.column,
        at: path.to_string(),
        message,
    }
}

/// A serde path as the plan's positions name it: `deploy[1].needs[0]`.
fn path_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut text = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => text.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            Segment::Unknown => text.push_str(if text.is_empty() { "?" } else { ".?" }),
        }
    }
    text
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `deploy[1].name` -> (`deploy[1]`, `name`); None for a sequence item,
/// which cannot be dropped without moving the items after it.
fn split_last(path: &str) -> Option<(String, String)> {
    if path.ends_with(']') {
        return None;
    }
    match path.rfind('.') {
        Some(cut) => Some((path[..cut].to_string(), path[cut + 1..].to_string())),
        None => Some((String::new(), path.to_string())),
    }
}

/// The text between `prefix` and the next backtick.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    Some(rest[..rest.find('`')?].to_string())
}

/// The value at `path`, for changing it.
fn at_path<'a>(document: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut value = document;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indexes) = match part.find('[') {
            Some(cut) => (&part[..cut], &part[cut..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            value = value.get_mut(key)?;
        }
        for index in indexes.split(['[', ']']).filter(|i| !i.is_empty()) {
            value = value.get_mut(index.parse::<usize>().ok()?)?;
        }
    }
    Some(value)
}

fn remove(document: &mut Value, parent: &str, key: &str) -> bool {
    at_path(document, parent)
        .and_then(Value::as_mapping_mut)
        .is_some_and(|mapping| mapping.remove(key).is_some())
}

/// A number or boolean where text goes, replaced by the text it spells
/// (`42` -> `"42"`), so that the rules after it still run. False when the
/// value is not such a scalar.
fn as_text(document: &mut Value, path: &str) -> bool {
    let Some(value) = at_path(document, path) else {
        return false;
    };
    let text = match value {
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => return false,
    };
    *value = Value::String(text);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaped(text: &str) -> Shaped {
        let document: Value = serde_norway::from_str(text).unwrap();
        shape(document, &Positions::index(text))
    }

    #[test]
    fn every_shape_problem_is_found_and_the_plan_still_typed() {
        let text = "\
apiVersion: loadmaster/v1
cluster:
  name: 42
  colour: blue
images:
  - name: app:1
    pull: sometimes
";
        let shaped = shaped(text);
        let found: Vec<(usize, usize, &str, &str)> = shaped
            .problems
            .iter()
            .map(|p| (p.line, p.column, p.at.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!((found[0].0, found[0].1, found[0].2), (3, 9, "cluster.name"));
        assert!(
            found[0]
                .3
                .starts_with("invalid type: integer `42`, expected a string")
        );
        assert_eq!((found[1].0, found[1].1, found[1].2), (4, 3, "cluster"));
        assert!(found[1].3.starts_with("unknown field `colour`"));
        assert_eq!(
            (found[2].0, found[2].1, found[2].2),
            (7, 11, "images[0].pull")
        );
        assert!(found[2].3.starts_with("unknown variant `sometimes`"));
        let plan = shaped.plan.expect("the repaired plan is typed");
        assert_eq!(plan.cluster.name, "42");
        assert!(plan.images[0].pull.is_none());
        assert!(shaped.repaired.contains(&"cluster.name".to_string()));
    }

    #[test]
    fn a_missing_required_field_ends_the_repairs() {
        let shaped = shaped("apiVersion: loadmaster/v1\ncluster:\n  nam: demo\n");
        let messages: Vec<&str> = shaped.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].starts_with("unknown field `nam`"));
        assert_eq!(messages[1], "missing field `name`");
        assert!(shaped.plan.is_none());
    }

    #[test]
    fn a_dropped_required_value_is_not_reported_again_as_missing() {
        // A list where the name goes: not a scalar to take as text.
        let shaped = shaped("apiVersion: loadmaster/v1\ncluster:\n  name: [a, b]\n");
        let messages: Vec<&str> = shaped.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].starts_with("invalid type: sequence"));
    }
}

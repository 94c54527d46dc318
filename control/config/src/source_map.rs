//! Maps a field path (`listeners[0].routes[2].cluster`) to its line in the YAML text, so validation
//! errors found after deserializing can still point at the line to fix.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Field path → 1-based line of the key (or of the sequence item).
#[derive(Debug, Default)]
pub struct SourceMap {
    lines: HashMap<String, usize>,
}

enum Frame {
    Map { key: Option<String> },
    Seq { next: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<(Frame, String)>,
    lines: HashMap<String, usize>,
}

impl Builder {
    /// The path of the value that the next event starts, or `None` when the event is a map key.
    fn value_path(&mut self, line: usize) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some((Frame::Seq { next }, base)) => {
                let p = format!("{base}[{next}]");
                *next += 1;
                self.lines.entry(p.clone()).or_insert(line);
                Some(p)
            }
            Some((Frame::Map { key }, base)) => key.take().map(|k| {
                if base.is_empty() {
                    k
                } else {
                    format!("{base}.{k}")
                }
            }),
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(text, ..) => match self.value_path(line) {
                Some(_) => {}
                None => {
                    // A key: remember its line under the full path of its value.
                    if let Some((Frame::Map { key }, base)) = self.stack.last_mut() {
                        let p = if base.is_empty() {
                            text.clone()
                        } else {
                            format!("{base}.{text}")
                        };
                        self.lines.entry(p).or_insert(line);
                        *key = Some(text);
                    }
                }
            },
            Event::MappingStart(..) => {
                let p = self.value_path(line).unwrap_or_default();
                self.stack.push((Frame::Map { key: None }, p));
            }
            Event::SequenceStart(..) => {
                let p = self.value_path(line).unwrap_or_default();
                self.stack.push((Frame::Seq { next: 0 }, p));
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Alias(_) => {
                self.value_path(line);
            }
            _ => {}
        }
    }
}

impl SourceMap {
    /// Builds the map; a text that does not parse gives an empty map (serde reports that error).
    pub fn new(text: &str) -> Self {
        let mut b = Builder::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut b, false);
        SourceMap { lines: b.lines }
    }

    /// The line of `path`, or of its nearest ancestor that is in the file.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_lines() {
        let text = "workers: 2\nlisteners:\n  - name: a\n    routes:\n      - name: r\n        cluster: c\n";
        let m = SourceMap::new(text);
        assert_eq!(m.line_of("workers"), Some(1));
        assert_eq!(m.line_of("listeners[0].name"), Some(3));
        assert_eq!(m.line_of("listeners[0].routes[0].cluster"), Some(6));
        assert_eq!(m.line_of("listeners[0].routes[0].missing"), Some(5));
    }
}

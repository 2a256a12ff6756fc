//! m2mhub patch: subscription filters in a tree of topic levels, so that finding the filters a
//! topic matches costs one step per topic level (plus the wildcard branches on the way), not
//! one `matches` call per filter the broker holds. Matching follows `protocol::matches`:
//! `+` is one level, a trailing `#` is that level and everything below it (`a/#` matches `a`),
//! and a topic that starts with `$` matches no filter.

use std::collections::HashMap;

use crate::router::FilterIdx;

#[derive(Default)]
pub struct FilterTree {
    root: Node,
}

#[derive(Default)]
struct Node {
    /// Next levels by name.
    children: HashMap<String, Node>,
    /// The `+` level.
    plus: Option<Box<Node>>,
    /// Filters that end at this node.
    here: Vec<FilterIdx>,
    /// Filters that end with `#` after this node.
    hash: Vec<FilterIdx>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.plus.is_none() && self.here.is_empty() && self.hash.is_empty()
    }
}

impl FilterTree {
    pub fn insert(&mut self, filter: &str, idx: FilterIdx) {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            match level {
                "#" => {
                    node.hash.push(idx);
                    return;
                }
                "+" => node = node.plus.get_or_insert_with(Default::default),
                _ => node = node.children.entry(level.to_owned()).or_default(),
            }
        }
        node.here.push(idx);
    }

    /// Removes `filter` (as inserted with `idx`), and the nodes left without filters.
    pub fn remove(&mut self, filter: &str, idx: FilterIdx) {
        let levels: Vec<&str> = filter.split('/').collect();
        remove(&mut self.root, &levels, idx);
    }

    /// The filters `topic` matches, each once.
    pub fn matches(&self, topic: &str) -> Vec<FilterIdx> {
        let mut found = Vec::new();
        if !topic.starts_with('$') {
            let levels: Vec<&str> = topic.split('/').collect();
            walk(&self.root, &levels, &mut found);
        }
        found
    }
}

fn walk(node: &Node, levels: &[&str], found: &mut Vec<FilterIdx>) {
    // `#` matches this level and everything below, including nothing more.
    found.extend_from_slice(&node.hash);
    let Some((level, rest)) = levels.split_first() else {
        found.extend_from_slice(&node.here);
        return;
    };
    if let Some(child) = node.children.get(*level) {
        walk(child, rest, found);
    }
    if let Some(plus) = &node.plus {
        walk(plus, rest, found);
    }
}

/// Returns whether `node` is left empty.
fn remove(node: &mut Node, levels: &[&str], idx: FilterIdx) -> bool {
    match levels.split_first() {
        None => node.here.retain(|&i| i != idx),
        Some((&"#", _)) => node.hash.retain(|&i| i != idx),
        Some((&"+", rest)) => {
            if let Some(plus) = node.plus.as_mut() {
                if remove(plus, rest, idx) {
                    node.plus = None;
                }
            }
        }
        Some((level, rest)) => {
            if let Some(child) = node.children.get_mut(*level) {
                if remove(child, rest, idx) {
                    node.children.remove(*level);
                }
            }
        }
    }
    node.is_empty()
}

#[cfg(test)]
mod test {
    use super::FilterTree;
    use crate::protocol::matches;

    const FILTERS: &[&str] = &[
        "#", "+", "a", "a/#", "a/+", "a/b", "a/+/c", "+/b/#", "/oneM2M/req/+/id-in/+",
        "/oneM2M/#", "a/b/c/d", "+/+", "", "/", "/+",
    ];
    const TOPICS: &[&str] = &[
        "a", "a/b", "a/b/c", "a/x/c", "b/b", "b/b/z/z", "/oneM2M/req/Cae/id-in/json", "",
        "/", "//", "$SYS/x", "a/b/c/d", "x", "é/b",
    ];

    #[test]
    fn the_tree_matches_what_matches_matches() {
        let mut tree = FilterTree::default();
        for (i, f) in FILTERS.iter().enumerate() {
            tree.insert(f, i);
        }
        for topic in TOPICS {
            let mut got = tree.matches(topic);
            got.sort();
            let want: Vec<usize> = FILTERS
                .iter()
                .enumerate()
                .filter(|(_, f)| !topic.starts_with('$') && matches(topic, f))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(got, want, "topic {topic:?}");
        }
    }

    #[test]
    fn removed_filters_no_longer_match_and_leave_no_nodes() {
        let mut tree = FilterTree::default();
        for (i, f) in FILTERS.iter().enumerate() {
            tree.insert(f, i);
        }
        for (i, f) in FILTERS.iter().enumerate() {
            tree.remove(f, i);
        }
        for topic in TOPICS {
            assert!(tree.matches(topic).is_empty(), "{topic}");
        }
        assert!(tree.root.is_empty());
    }
}

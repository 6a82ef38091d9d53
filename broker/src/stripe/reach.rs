//! Whether an allowlist pattern can match any path of an endpoint template.
//!
//! The pattern (literal characters, `*` for any run, `/` included) and the
//! template (literal characters, `{id}` for one object id as
//! [`super::ids::looks_like_id`] reads it) are each a regular language; they
//! share a path exactly when their product automaton can reach a state
//! where both accept. Reasoning on the grammar rather than on sample ids
//! refuses `POST /v1/invoices/inv_*/pay` as surely as `POST /v1/*`.

use std::collections::{BTreeSet, VecDeque};

/// The characters an edge of the template's automaton reads.
#[derive(Debug, Clone, Copy)]
enum Class {
    Exact(char),
    Lower,
    LowerOrDigit,
    DigitOrUpper,
    Alphanumeric,
}

impl Class {
    fn accepts(self, c: char) -> bool {
        match self {
            Self::Exact(literal) => c == literal,
            Self::Lower => c.is_ascii_lowercase(),
            Self::LowerOrDigit => c.is_ascii_lowercase() || c.is_ascii_digit(),
            Self::DigitOrUpper => c.is_ascii_digit() || c.is_ascii_uppercase(),
            Self::Alphanumeric => c.is_ascii_alphanumeric(),
        }
    }
}

/// One state of the template's automaton: edges, and moves that read nothing.
#[derive(Debug, Default)]
struct State {
    edges: Vec<(Class, usize)>,
    free: Vec<usize>,
}

/// The template's automaton; its last state accepts.
///
/// `{id}` is `[a-z][a-z0-9_]*_[A-Za-z0-9]*[A-Z0-9][A-Za-z0-9]*`: a lowercase
/// prefix, then, after its last `_`, a part holding a digit or a capital.
fn template_automaton(template: &str) -> Vec<State> {
    let mut states = vec![State::default()];
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        let at = states.len() - 1;
        if let Some(after) = rest.strip_prefix("{id}") {
            // at: its first letter; +1 the prefix; +2 the part after an `_`,
            // no digit or capital yet; +3 with one; +4 past the id.
            states.extend((0..4).map(|_| State::default()));
            states[at].edges.push((Class::Lower, at + 1));
            states[at + 1].edges.push((Class::LowerOrDigit, at + 1));
            states[at + 1].edges.push((Class::Exact('_'), at + 1));
            states[at + 1].edges.push((Class::Exact('_'), at + 2));
            states[at + 2].edges.push((Class::Lower, at + 2));
            states[at + 2].edges.push((Class::DigitOrUpper, at + 3));
            states[at + 3].edges.push((Class::Alphanumeric, at + 3));
            states[at + 3].free.push(at + 4);
            rest = after;
        } else {
            states.push(State::default());
            states[at].edges.push((Class::Exact(c), at + 1));
            rest = &rest[c.len_utf8()..];
        }
    }
    states
}

/// `states` and every state reachable from them without reading.
fn closure(automaton: &[State], start: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::from([start]);
    let mut queue = vec![start];
    while let Some(state) = queue.pop() {
        for &next in &automaton[state].free {
            if seen.insert(next) {
                queue.push(next);
            }
        }
    }
    seen
}

/// The pattern's states reachable from `at` (characters matched so far)
/// without reading: past every `*`, which may match nothing.
fn pattern_closure(pattern: &[char], at: usize) -> Vec<usize> {
    let mut states = vec![at];
    let mut next = at;
    while pattern.get(next) == Some(&'*') {
        next += 1;
        states.push(next);
    }
    states
}

/// Whether some id makes `template` a path that `pattern` matches.
pub fn can_match(pattern: &str, template: &str) -> bool {
    !ends_disagree(pattern, template) && product_accepts(pattern, template)
}

/// Whether the literal characters `pattern` and `template` start with (up
/// to a `*` in one, an `{id}` in the other), or those they end with,
/// disagree: then no path fits both. Most of an allowlist's pairs with the
/// unvalued calls are told apart so, without the automaton (issue 24: that
/// was a quarter of the broker's CPU per key issued).
fn ends_disagree(pattern: &str, template: &str) -> bool {
    fn disagree(
        mut pattern: impl Iterator<Item = char>,
        mut template: impl Iterator<Item = char>,
        id_edge: char,
    ) -> bool {
        loop {
            match (pattern.next(), template.next()) {
                (Some('*'), _) => return false,
                (_, Some(edge)) if edge == id_edge => return false,
                (Some(p), Some(t)) if p == t => {}
                (None, None) => return false,
                // A character either side that the other cannot match there.
                _ => return true,
            }
        }
    }
    disagree(pattern.chars(), template.chars(), '{')
        || disagree(pattern.chars().rev(), template.chars().rev(), '}')
}

/// [`can_match`] decided on the product of the two automata.
fn product_accepts(pattern: &str, template: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let automaton = template_automaton(template);
    let accept = automaton.len() - 1;
    // One character of each kind an id can hold, and every character either
    // side names: enough to follow every edge either automaton has.
    let mut alphabet: BTreeSet<char> = pattern.iter().copied().filter(|c| *c != '*').collect();
    alphabet.extend(template.chars().filter(|c| !matches!(c, '{' | '}')));
    for class in ['a'..='z', 'A'..='Z', '0'..='9'] {
        alphabet.extend(class.clone().find(|c| !alphabet.contains(c)));
    }
    alphabet.insert('_');

    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::new();
    for p in pattern_closure(&pattern, 0) {
        for t in closure(&automaton, 0) {
            if seen.insert((p, t)) {
                queue.push_back((p, t));
            }
        }
    }
    while let Some((p, t)) = queue.pop_front() {
        if p == pattern.len() && t == accept {
            return true;
        }
        for &c in &alphabet {
            let pattern_next = match pattern.get(p) {
                Some('*') => Some(p),
                Some(&literal) if literal == c => Some(p + 1),
                _ => None,
            };
            let Some(pattern_next) = pattern_next else {
                continue;
            };
            for &(class, target) in &automaton[t].edges {
                if !class.accepts(c) {
                    continue;
                }
                for p2 in pattern_closure(&pattern, pattern_next) {
                    for t2 in closure(&automaton, target) {
                        if seen.insert((p2, t2)) {
                            queue.push_back((p2, t2));
                        }
                    }
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::EndpointRule;
    use proptest::prelude::*;

    #[test]
    fn patterns_reach_templates_by_their_grammar() {
        let pay = "/v1/invoices/{id}/pay";
        for pattern in [
            "/v1/*",
            "/v1/invoices/*",
            "/v1/invoices/inv_*/pay",
            "/v1/invoices/in_*",
            "/v1/invoices/*_1/pay",
            "/v1/*/pay",
            "/v1/invoices/inv_XYZ9/pay",
        ] {
            assert!(can_match(pattern, pay), "{pattern}");
        }
        for pattern in [
            "/v1/invoices",
            "/v1/invoices/*/finalize",
            "/v1/invoices/in_test/pay",
            "/v1/invoices/IN_1/pay",
            "/v1/payment_intents/*",
            "/v1/invoices/in_1/pay/*x",
        ] {
            assert!(!can_match(pattern, pay), "{pattern}");
        }
        assert!(can_match("/v1/subscriptions/*", "/v1/subscriptions/{id}"));
        assert!(can_match("/v1/transfers", "/v1/transfers"));
        assert!(!can_match("/v1/transfers/*", "/v1/transfers"));
    }

    proptest! {
        /// Wherever the matcher allows a concrete path of the template, the
        /// grammar says the pattern can match the template.
        #[test]
        fn agrees_with_the_matcher_on_concrete_paths(
            prefix in "[a-z]{1,4}(_[a-z]{1,3})?",
            random in "[a-z]{0,3}[A-Z0-9][A-Za-z0-9]{0,4}",
            cut in 1usize..30,
            star in prop::bool::ANY,
        ) {
            let id = format!("{prefix}_{random}");
            let path = format!("/v1/invoices/{id}/pay");
            // A pattern made from the path: a cut-off prefix and a `*`, or the path itself.
            let pattern = if star {
                format!("{}*", &path[..cut.min(path.len())])
            } else {
                path.clone()
            };
            let rule = EndpointRule::try_from(format!("POST {pattern}")).unwrap();
            prop_assert!(rule.allows("POST", &path));
            let template = "/v1/invoices/{id}/pay";
            prop_assert!(can_match(&pattern, template), "{} !~ {}", pattern, template);
        }

        /// The shortcut on the literal ends never refuses a pair the
        /// automaton accepts: `can_match` decides as the automaton alone.
        #[test]
        fn the_ends_never_refuse_what_the_automaton_accepts(
            pattern in "(/|v1|in|_|\\*|\\{|x|pay|[a-z0-9A-Z]){0,8}",
            template in prop::collection::vec(
                prop::sample::select(vec!["/", "v1", "in", "_", "{id}", "x", "pay", "1"]),
                0..8,
            ),
        ) {
            let template = template.concat();
            prop_assert_eq!(
                can_match(&pattern, &template),
                product_accepts(&pattern, &template),
                "{} ~ {}", pattern, template
            );
        }
    }

    #[test]
    fn the_ends_tell_most_pairs_apart() {
        assert!(ends_disagree("/v1/payment_intents", "/v1/transfers"));
        assert!(ends_disagree(
            "/v1/payment_intents/*/cancel",
            "/v1/payment_intents/{id}/apply_customer_balance"
        ));
        assert!(ends_disagree("/v1/transfers/*", "/v1/transfers"));
        assert!(!ends_disagree("/v1/*", "/v1/invoices/{id}/pay"));
        assert!(!ends_disagree("/v1/invoices/in_*", "/v1/invoices/{id}/pay"));
    }
}

//! "Did you mean …?" suggestions: the closest candidate by edit distance.

/// The candidate closest to `wanted` (Levenshtein distance at most 2, or a third of its
/// length for long names), if any.
pub fn closest<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (wanted.chars().count() / 3).max(2);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == wanted {
            continue;
        }
        let distance = strsim::levenshtein(wanted, candidate);
        if distance <= limit
            && best.is_none_or(|(d, c)| distance < d || (distance == d && candidate < c))
        {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn picks_nearest() {
        let c = ["foo", "bar", "fooo"];
        assert_eq!(super::closest("fo", c.iter().copied()), Some("foo".into()));
        assert_eq!(super::closest("zzzzzz", c.iter().copied()), None);
    }
}

//! A linear scan of the tokens before parsing that refuses the nesting the parser handles
//! badly. rnix's recursive descent counts its depth only for whole expressions (and refuses
//! those nested past 512 itself); list elements and prefix operators (`!`, `-`) recurse
//! without a count, and rowan's node cache hashes a node's whole subtree when the node is
//! made, so 100,000 nested `[` or `!` take minutes and then overflow the stack. Nix 2.8
//! refuses such input too ("memory exhausted", past about 5,000 levels of list).
use rnix::SyntaxKind;

/// The deepest list nesting, and the longest run of prefix operators, that is parsed.
pub const MAX_UNCOUNTED_NESTING: usize = 4096;

/// The byte offset of the token that nests deeper than [`MAX_UNCOUNTED_NESTING`], if any.
pub fn too_deep_at(source: &str) -> Option<usize> {
    let mut offset = 0;
    let mut list_depth = 0usize;
    let mut prefix_run = 0usize;
    for (kind, text) in rnix::tokenize(source) {
        match kind {
            SyntaxKind::TOKEN_L_BRACK => {
                list_depth += 1;
                prefix_run = 0;
            }
            SyntaxKind::TOKEN_R_BRACK => {
                list_depth = list_depth.saturating_sub(1);
                prefix_run = 0;
            }
            SyntaxKind::TOKEN_INVERT | SyntaxKind::TOKEN_SUB => prefix_run += 1,
            SyntaxKind::TOKEN_WHITESPACE | SyntaxKind::TOKEN_COMMENT => {}
            _ => prefix_run = 0,
        }
        if list_depth > MAX_UNCOUNTED_NESTING || prefix_run > MAX_UNCOUNTED_NESTING {
            return Some(offset);
        }
        offset += text.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_lists_and_long_prefix_runs_are_found() {
        let limit = MAX_UNCOUNTED_NESTING;
        let list = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(too_deep_at(&list(limit)), None);
        assert_eq!(too_deep_at(&list(limit + 1)), Some(limit));
        // Siblings do not add up.
        assert_eq!(too_deep_at(&list(limit).repeat(3)), None);
        let nots = format!("{}true", "! ".repeat(limit + 1));
        assert_eq!(too_deep_at(&nots), Some(2 * limit));
        assert_eq!(too_deep_at(&format!("1{}", " - 1".repeat(limit * 2))), None);
        // Inside strings and comments, brackets are text.
        assert_eq!(too_deep_at(&format!("\"{}\"", "[".repeat(limit * 2))), None);
        assert_eq!(
            too_deep_at(&format!("# {}\n1", "!".repeat(limit * 2))),
            None
        );
    }
}

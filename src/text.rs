//! Text for people: counts with the right plural.

/// `n` and the noun, singular for one: `count(1, "namespace", "namespaces")` is
/// "1 namespace", `count(2, ...)` "2 namespaces".
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn one_is_singular_everything_else_plural() {
        assert_eq!(count(1u32, "namespace", "namespaces"), "1 namespace");
        assert_eq!(count(0u32, "member", "members"), "0 members");
        assert_eq!(count(2u64, "RoleBinding", "RoleBindings"), "2 RoleBindings");
    }
}

//! OData literals for `$filter`: every value placed in a filter goes through [`quote`], so a
//! `'` in an employee id can neither break nor widen the query.

/// A string literal: wrapped in single quotes, with each `'` doubled (OData ABNF `SQUOTE-in-string`).
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// `property eq 'value'`, with the value quoted.
pub fn eq(property: &str, value: &str) -> String {
    format!("{property} eq {}", quote(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled_so_a_value_cannot_close_the_literal() {
        assert_eq!(quote("1001"), "'1001'");
        assert_eq!(quote("o'brien"), "'o''brien'");
        assert_eq!(
            eq("employeeId", "x' or employeeId ne 'y"),
            "employeeId eq 'x'' or employeeId ne ''y'"
        );
    }
}

//! report: verdicts for people (tables) and for programs (JSON).

mod json;
mod table;

pub use json::{SCHEMA_VERSION, write_json};
pub use table::{TableOptions, render_table};

/// 65520 → "65,520".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_groups_digits() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(65520), "65,520");
        assert_eq!(super::thousands(1234567), "1,234,567");
    }
}

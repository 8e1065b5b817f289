//! Recovery codes: ten random codes shown once at enrolment, each good for one sign-in when
//! the authenticator is lost. 16 characters from a 31-letter alphabet without look-alikes
//! (about 79 bits), so an unsalted SHA-256 is enough to store them: the store keeps only the
//! hashes, and a database dump cannot be searched for them.

use crate::store::secret_hash;
use subtle::ConstantTimeEq;

/// Codes generated at enrolment.
pub const COUNT: usize = 10;
/// Letters and digits without `0 o 1 i l`.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Characters per code (shown as four groups of four).
const LENGTH: usize = 16;

/// Ten fresh codes, formatted `xxxx-xxxx-xxxx-xxxx`.
pub fn generate() -> Vec<String> {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..COUNT)
        .map(|_| {
            let raw: Vec<char> = (0..LENGTH)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            raw.chunks(4)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// The canonical form of a typed code: lower case, without dashes and spaces.
pub fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The stored form of a code: hex SHA-256 of its canonical form.
pub fn hash(code: &str) -> String {
    secret_hash(&normalize(code))
}

/// The index of the stored hash matching `code`, if any (every hash compared in constant time).
pub fn find(hashes: &[String], code: &str) -> Option<usize> {
    let presented = hash(code);
    let mut found = None;
    for (i, h) in hashes.iter().enumerate() {
        if h.len() == presented.len() && bool::from(h.as_bytes().ct_eq(presented.as_bytes())) {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_well_formed_codes() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
        for c in &codes {
            assert_eq!(c.len(), 19, "{c}");
            assert_eq!(normalize(c).len(), LENGTH);
            assert!(normalize(c).bytes().all(|b| ALPHABET.contains(&b)), "{c}");
        }
    }

    #[test]
    fn a_code_matches_its_hash_however_it_is_typed_and_nothing_else_does() {
        let codes = generate();
        let hashes: Vec<String> = codes.iter().map(|c| hash(c)).collect();
        assert_eq!(find(&hashes, &codes[3]), Some(3));
        let typed = codes[7].to_uppercase().replace('-', " ");
        assert_eq!(find(&hashes, &typed), Some(7));
        assert_eq!(find(&hashes, "aaaa-bbbb-cccc-dddd"), None);
        assert_eq!(find(&[], &codes[0]), None);
        assert!(!hashes[0].contains(&normalize(&codes[0])));
    }
}

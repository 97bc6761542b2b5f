//! zkCli's ACL syntax: `scheme:id:perms[,scheme:id:perms...]`, e.g.
//! `world:anyone:cdrwa,digest:user:base64hash:r,ip:10.0.0.0/8:rw`.
//!
//! Contract: the id is everything between the first and the last `:` (digest ids
//! contain one themselves); perms are letters of `cdrwa` in any order (create, delete,
//! read, write, admin). Unlike zkCli, which warns and drops a malformed entry, a
//! malformed entry or an unknown letter is an error: a silently narrower ACL than the
//! one typed is worse than no change. [`format_perms`] writes zkCli's letter order
//! (`cdrwa`), and `parse(format(acl)) == acl` for every list of valid entries.
//!
//! Pure: no IO.

use transport::jute::{Acl, Id, perms};

/// Most entries one ACL may hold.
pub const ACL_ENTRIES_MAX: usize = 1024;

/// Permission letters in zkCli's print order, with their bits.
const LETTERS: [(char, i32); 5] = [
    ('c', perms::CREATE),
    ('d', perms::DELETE),
    ('r', perms::READ),
    ('w', perms::WRITE),
    ('a', perms::ADMIN),
];

/// Parses a zkCli ACL list.
pub fn parse(text: &str) -> Result<Vec<Acl>, String> {
    let mut acl = Vec::new();
    for entry in text.split(',') {
        if acl.len() == ACL_ENTRIES_MAX {
            return Err(format!("more than {ACL_ENTRIES_MAX} ACL entries"));
        }
        acl.push(parse_entry(entry)?);
    }
    Ok(acl)
}

fn parse_entry(entry: &str) -> Result<Acl, String> {
    let (first, last) = match (entry.find(':'), entry.rfind(':')) {
        (Some(f), Some(l)) if f != l => (f, l),
        _ => return Err(format!("{entry} does not have the form scheme:id:perm")),
    };
    Ok(Acl {
        perms: parse_perms(&entry[last + 1..])?,
        id: Id::new(&entry[..first], &entry[first + 1..last]),
    })
}

/// `cdrwa` letters to permission bits.
pub fn parse_perms(text: &str) -> Result<i32, String> {
    let mut bits = 0;
    for c in text.chars() {
        let (_, bit) = LETTERS
            .iter()
            .find(|(l, _)| *l == c)
            .ok_or_else(|| format!("Unknown perm type: {c}"))?;
        bits |= bit;
    }
    Ok(bits)
}

/// Permission bits as zkCli prints them (`cdrwa` order; unknown bits are not shown).
pub fn format_perms(bits: i32) -> String {
    LETTERS
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(c, _)| *c)
        .collect()
}

/// An ACL list in the syntax [`parse`] reads.
pub fn format(acl: &[Acl]) -> String {
    acl.iter()
        .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, format_perms(a.perms)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(scheme: &str, id: &str, perms: i32) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    #[test]
    fn parses_zkcli_examples() {
        let got = parse("world:anyone:cdrwa,digest:u:abc/+=:r,ip:10.0.0.0/8:rw").unwrap();
        assert_eq!(
            got,
            vec![
                acl("world", "anyone", perms::ALL),
                acl("digest", "u:abc/+=", perms::READ),
                acl("ip", "10.0.0.0/8", perms::READ | perms::WRITE),
            ]
        );
        assert_eq!(
            parse("auth::awrdc").unwrap(),
            vec![acl("auth", "", perms::ALL)]
        );
        assert_eq!(
            parse("world:anyone:").unwrap(),
            vec![acl("world", "anyone", 0)]
        );
    }

    #[test]
    fn malformed_entries_are_errors() {
        assert_eq!(
            parse("world:anyone"),
            Err("world:anyone does not have the form scheme:id:perm".into())
        );
        assert_eq!(parse("world:anyone:rx"), Err("Unknown perm type: x".into()));
        assert!(parse("").is_err());
        assert!(parse("world:anyone:r,").is_err());
    }

    #[test]
    fn format_round_trips() {
        assert_eq!(format_perms(perms::ALL), "cdrwa");
        assert_eq!(format_perms(perms::READ | perms::ADMIN), "ra");
        assert_eq!(format_perms(0), "");
        for text in [
            "world:anyone:cdrwa",
            "digest:u:h=:r,ip:1.2.3.4:cd",
            "auth::a",
        ] {
            assert_eq!(format(&parse(text).unwrap()), text);
        }
        for bits in 0..=perms::ALL {
            assert_eq!(parse_perms(&format_perms(bits)), Ok(bits));
        }
    }

    #[test]
    fn too_many_entries_refused() {
        let long = vec!["world:anyone:r"; ACL_ENTRIES_MAX + 1].join(",");
        assert!(parse(&long).unwrap_err().contains("more than"));
    }
}

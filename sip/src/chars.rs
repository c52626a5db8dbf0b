//! RFC 3261 character classes as 256-entry lookup tables (one load per byte on hot paths).

const fn class(
    extra: &[u8],
    alnum: bool,
    unreserved_marks: bool,
    escaped: bool,
    high: bool,
) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] =
            (alnum && b.is_ascii_alphanumeric()) || (high && b >= 0x80) || (escaped && b == b'%');
        i += 1;
    }
    if unreserved_marks {
        let marks = b"-_.!~*'()";
        let mut j = 0;
        while j < marks.len() {
            t[marks[j] as usize] = true;
            j += 1;
        }
    }
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
}

/// `token` (RFC 3261 §25.1).
pub static TOKEN: [bool; 256] = class(b"-.!%*_+`'~", true, false, false, false);
/// `user` of a SIP URI: unreserved / escaped / user-unreserved (UTF-8 tolerated).
pub static USER: [bool; 256] = class(b"&=+$,;?/", true, true, true, true);
/// `password` of a SIP URI.
pub static PASSWORD: [bool; 256] = class(b"&=+$,", true, true, true, false);
/// A URI parameter: paramchar and '='.
pub static URI_PARAM: [bool; 256] = class(b"[]/:&+$=", true, true, true, false);
/// A URI header: hnv-unreserved, '=', and unreserved/escaped.
pub static URI_HEADER: [bool; 256] = class(b"[]/?:+$=", true, true, true, false);
/// Host names (with the '_' many deployments use).
pub static HOSTNAME: [bool; 256] = class(b"-._", true, false, false, false);

#[inline]
pub fn all(s: &str, table: &[bool; 256]) -> bool {
    s.bytes().all(|b| table[b as usize])
}

#[inline]
pub fn first_not(s: &str, table: &[bool; 256]) -> Option<u8> {
    s.bytes().find(|&b| !table[b as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(
            all("INVITE", &TOKEN) && all("!interesting-Method0123456789_*+`.%indeed'~", &TOKEN)
        );
        assert!(!all("a b", &TOKEN) && !all("a:b", &TOKEN));
        assert!(all(
            "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*",
            &USER
        ));
        assert!(!all("us er", &USER) && !all("a@b", &USER));
        assert!(all("transport=tcp", &URI_PARAM) && !all("a;b", &URI_PARAM));
    }
}

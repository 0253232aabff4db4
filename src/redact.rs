//! Redaction of URLs: what may be shown of a URL is its scheme, host and
//! port. User info (`https://user:pass@…`), the path (`/api/v0/<project id>`
//! on some gateways) and the query (`?key=…`) can each carry a credential, so
//! none of them is ever printed: not by `check-config`, not in `/health` or
//! `/ready`, not in logs, not in Sentry events.
//!
//! [`url`] redacts one URL; [`urls_in`] redacts every URL inside free text
//! (an error message from an HTTP client names the URL it failed on).

/// `scheme://host[:port]` of `raw`; `[redacted URL]` when it cannot be parsed
/// (an unparsable string might still hold a secret).
pub fn url(raw: &str) -> String {
    match url::Url::parse(raw.trim()) {
        Ok(u) => match u.host_str() {
            Some(host) => match u.port() {
                Some(port) => format!("{}://{host}:{port}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            },
            None => format!("{}:[redacted]", u.scheme()),
        },
        Err(_) => "[redacted URL]".to_owned(),
    }
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// Where a URL inside text ends: white space, quotes, brackets.
fn ends_url(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')' | ']' | '}' | '\\')
}

/// `text` with every `scheme://…` token replaced by its redacted form.
pub fn urls_in(text: &str) -> String {
    if !text.contains("://") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let before = &rest[..at];
        let scheme_len = before
            .chars()
            .rev()
            .take_while(|c| is_scheme_char(*c))
            .map(char::len_utf8)
            .sum::<usize>();
        let start = at - scheme_len;
        let tail = &rest[at..];
        let len = tail.find(ends_url).unwrap_or(tail.len());
        let token = &rest[start..at + len];
        out.push_str(&rest[..start]);
        if scheme_len == 0 {
            // No scheme before `://`: not a URL we can name, drop the authority anyway.
            out.push_str("[redacted URL]");
        } else {
            out.push_str(&url(token));
        }
        rest = &rest[at + len..];
    }
    out.push_str(rest);
    out
}

/// Redact every string in a JSON document that holds a URL.
pub fn urls_in_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains("://") => *s = urls_in(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(urls_in_json),
        serde_json::Value::Object(m) => m.values_mut().for_each(urls_in_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_keeps_only_scheme_host_and_port() {
        assert_eq!(
            url("https://user:pa55@bf.example.com:8443/api/v0/preprodKEY?token=abc#frag"),
            "https://bf.example.com:8443"
        );
        assert_eq!(url("http://127.0.0.1/devnet/api/v0"), "http://127.0.0.1");
        assert_eq!(
            url("redis://:secret@10.0.0.5:6379/2"),
            "redis://10.0.0.5:6379"
        );
        assert_eq!(url("not a url secret"), "[redacted URL]");
    }

    #[test]
    fn urls_inside_text_are_redacted() {
        let t = "error sending request for url (https://me:pw@host.example/api/v0/KEY?x=1): connection refused";
        assert_eq!(
            urls_in(t),
            "error sending request for url (https://host.example): connection refused"
        );
        assert_eq!(urls_in("no url here"), "no url here");
        assert_eq!(
            urls_in("a http://h:1/p b https://k@j/q"),
            "a http://h:1 b https://j"
        );
        assert_eq!(urls_in("://secret"), "[redacted URL]");
    }

    #[test]
    fn json_strings_are_redacted_wherever_they_are() {
        let mut v = serde_json::json!({"a": {"url": "https://u:p@x.io/path?q=1"}, "b": ["ftp://y/z"], "n": 1});
        urls_in_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": {"url": "https://x.io"}, "b": ["ftp://y"], "n": 1})
        );
    }
}

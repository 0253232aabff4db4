//! Key order of one JSON object inside a request body.
//!
//! `serde_json::Value` keeps object keys sorted (the crate's `preserve_order` feature stays off on
//! purpose: request digests rely on sorted maps). The Cardano `script` transfer method, however,
//! applies `paymentRequirements.extra.parameters` in JavaScript property order, which depends on
//! the order the keys were written in. This module reads that order from the raw body with a
//! visitor that walks to the object and records its keys, skipping every value.

use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value as Json;

/// Where the `script` method's parameters live inside a request body.
pub const PARAMETERS_PATH: &[&str] = &["paymentRequirements", "extra", "parameters"];

/// The keys of the object at `path` in `body`, in document order (a key repeated in the text is
/// listed where it first appears, as JavaScript does). `None` if `body` is not JSON or the path does
/// not lead to an object. For a repeated key on the way, the last occurrence wins (as in
/// `serde_json::Value`).
pub fn object_key_order(body: &[u8], path: &[&str]) -> Option<Vec<String>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    PathSeed { path }.deserialize(&mut de).ok().flatten()
}

/// The parameter key order when it can matter: `extra.parameters` is an object with two or more
/// keys. `extra` is the already-parsed `paymentRequirements.extra` of the same body.
pub fn parameter_order(extra: &Json, body: &[u8]) -> Option<Vec<String>> {
    let params = extra.get("parameters")?.as_object()?;
    if params.len() < 2 {
        return None;
    }
    object_key_order(body, PARAMETERS_PATH)
}

struct PathSeed<'p> {
    path: &'p [&'p str],
}

impl<'de> DeserializeSeed<'de> for PathSeed<'_> {
    type Value = Option<Vec<String>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PathSeed<'_> {
    type Value = Option<Vec<String>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        match self.path.split_first() {
            None => {
                let mut keys: Vec<String> = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
                Ok(Some(keys))
            }
            Some((head, rest)) => {
                let mut found = None;
                while let Some(k) = map.next_key::<String>()? {
                    if k == *head {
                        found = map.next_value_seed(PathSeed { path: rest })?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(found)
            }
        }
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_document_order() {
        let body = br#"{"paymentRequirements":{"scheme":"exact","extra":{"x":[1,{"a":2}],
            "parameters":{"z":{"type":"integer","value":"1"},"10":{},"b":{},"2":{},"a":{}}}},
            "paymentPayload":{}}"#;
        assert_eq!(
            object_key_order(body, PARAMETERS_PATH).unwrap(),
            ["z", "10", "b", "2", "a"]
        );
    }

    #[test]
    fn repeated_keys_keep_their_first_place() {
        let body = br#"{"paymentRequirements":{"extra":{"parameters":{"b":1,"a":2,"b":3}}}}"#;
        assert_eq!(object_key_order(body, PARAMETERS_PATH).unwrap(), ["b", "a"]);
        // the last `extra` wins, as in serde_json::Value
        let body = br#"{"paymentRequirements":{"extra":{"parameters":{"q":1}},"extra":{"parameters":{"y":1,"x":2}}}}"#;
        assert_eq!(object_key_order(body, PARAMETERS_PATH).unwrap(), ["y", "x"]);
    }

    #[test]
    fn absent_or_not_an_object() {
        for body in [
            &br#"{"paymentRequirements":{"extra":{}}}"#[..],
            br#"{"paymentRequirements":{"extra":{"parameters":[1,2]}}}"#,
            br#"{"paymentRequirements":{"extra":null}}"#,
            br#"{"paymentRequirements":"x"}"#,
            br#"[1,2]"#,
            b"not json",
        ] {
            assert_eq!(object_key_order(body, PARAMETERS_PATH), None);
        }
    }

    #[test]
    fn only_probes_when_order_can_matter() {
        let body = br#"{"paymentRequirements":{"extra":{"parameters":{"b":{},"a":{}}}}}"#;
        let extra: Json = serde_json::json!({"parameters": {"a": {}, "b": {}}});
        assert_eq!(parameter_order(&extra, body).unwrap(), ["b", "a"]);
        let one: Json = serde_json::json!({"parameters": {"a": {}}});
        assert_eq!(parameter_order(&one, body), None);
    }
}

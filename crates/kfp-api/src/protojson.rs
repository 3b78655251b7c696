//! Numbers as Go's protojson reads and writes them, for both sides: int64 fields travel as JSON
//! strings, and a protobuf `Struct` (a stored pipeline spec) holds every number as a double and
//! writes an integral one without a fraction.

use serde::{Deserialize, Deserializer, Serializer};
use serde_json::{Number, Value};

/// Every number of `value` through `f`, recursively.
fn map_numbers(value: Value, f: &dyn Fn(Number) -> Value) -> Value {
    match value {
        Value::Number(n) => f(n),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| map_numbers(v, f)).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, map_numbers(v, f)))
                .collect(),
        ),
        other => other,
    }
}

/// Every number as a double, as a protobuf Struct holds it (what the server stores).
pub fn numbers_as_doubles(value: Value) -> Value {
    map_numbers(value, &|n| {
        let f = n.as_f64().unwrap_or(0.0);
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    })
}

/// Numbers as protojson writes a Struct's doubles: integral values without a fraction.
pub fn integral_numbers(value: Value) -> Value {
    map_numbers(value, &|n| match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Value::Number(Number::from(f as i64)),
        Some(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        None => Value::Number(n),
    })
}

/// protojson writes int64 as a JSON string and reads a string or a number
/// (`#[serde(with = "kfp_api::protojson::int64")]` on an `Option<i64>`).
pub mod int64 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_str(&n.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let v = Option::<Value>::deserialize(d)?;
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a 64-bit integer"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a 64-bit integer"))),
            Some(other) => Err(serde::de::Error::custom(format!(
                "{other} is not a 64-bit integer"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn doubles_in_integral_out() {
        let v = json!({"a": 1, "b": [2.5, 3], "c": "4"});
        let d = numbers_as_doubles(v);
        assert_eq!(d.to_string(), r#"{"a":1.0,"b":[2.5,3.0],"c":"4"}"#);
        assert_eq!(
            integral_numbers(d).to_string(),
            r#"{"a":1,"b":[2.5,3],"c":"4"}"#
        );
    }
}

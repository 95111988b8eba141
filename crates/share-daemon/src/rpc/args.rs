//! Reading a method's arguments. Each reader takes what Transmission's clients send for its
//! type (Transmission's own coercions: a boolean as `true`/`false`, `0`/`1` or
//! `"true"`/`"false"`; a real as a number or a numeric string) and answers anything else
//! with an error naming the argument. Transmission skips such a value silently and says
//! `success`; share never does.

use serde_json::Value;

use super::{Args, RpcError};

/// A value of the wrong type for `key`.
fn wrong(key: &str, what: &str) -> RpcError {
    RpcError(format!("`{key}` must be {what}"))
}

/// `value` as a boolean, if it is one in Transmission's sense.
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// `value` as a whole number (a JSON integer, or a real with nothing after the point).
pub fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        _ => None,
    }
}

/// `value` as a real (a number, or a string that holds one).
pub fn as_real(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

pub fn bool_arg(args: &Args, key: &str) -> Result<Option<bool>, RpcError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_bool(v)
            .map(Some)
            .ok_or_else(|| wrong(key, "true or false")),
    }
}

pub fn int_arg(args: &Args, key: &str) -> Result<Option<i64>, RpcError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_int(v)
            .map(Some)
            .ok_or_else(|| wrong(key, "a whole number")),
    }
}

/// A whole number within `range`.
pub fn int_in(
    args: &Args,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, RpcError> {
    match int_arg(args, key)? {
        Some(n) if !range.contains(&n) => Err(RpcError(format!(
            "`{key}` must be from {} to {}",
            range.start(),
            range.end()
        ))),
        n => Ok(n),
    }
}

pub fn num_arg(args: &Args, key: &str) -> Result<Option<f64>, RpcError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_real(v).map(Some).ok_or_else(|| wrong(key, "a number")),
    }
}

pub fn str_arg<'a>(args: &'a Args, key: &str) -> Result<Option<&'a str>, RpcError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong(key, "a string")),
    }
}

/// A list of labels: strings without commas, trimmed as Transmission trims them.
pub fn strings_arg(args: &Args, key: &str) -> Result<Option<Vec<String>>, RpcError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(l)) if l.len() <= 1000 => l
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && s.len() <= 256 && !s.contains(','))
                    .map(str::to_owned)
                    .ok_or_else(|| wrong(key, "a list of labels (non-empty, without commas)"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(wrong(key, "a list of strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transmissions_coercions_are_taken_and_nothing_else() {
        assert_eq!(as_bool(&json!(true)), Some(true));
        assert_eq!(as_bool(&json!(1)), Some(true));
        assert_eq!(as_bool(&json!("false")), Some(false));
        assert_eq!(as_bool(&json!(2)), None);
        assert_eq!(as_bool(&json!("yes")), None);
        assert_eq!(as_int(&json!(250)), Some(250));
        assert_eq!(as_int(&json!(10.0)), Some(10));
        assert_eq!(as_int(&json!(250.7)), None);
        assert_eq!(as_int(&json!("250")), None);
        assert_eq!(as_int(&json!(true)), None);
        assert_eq!(as_real(&json!("1.5")), Some(1.5));
        assert_eq!(as_real(&json!(3)), Some(3.0));
        assert_eq!(as_real(&json!("x")), None);
        let args = json!({"labels": [" d ", "e"], "bad": ["a,b"]});
        let args = args.as_object().unwrap();
        assert_eq!(
            strings_arg(args, "labels").unwrap(),
            Some(vec!["d".into(), "e".into()])
        );
        assert!(strings_arg(args, "bad").unwrap_err().0.contains("`bad`"));
    }
}

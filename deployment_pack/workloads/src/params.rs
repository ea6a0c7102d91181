//! Parsing a workload's JSON params into its typed, defaulted params struct.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::WorkloadError;

/// Parses `params` (`null` means all defaults) into `T`, naming the workload in errors.
pub(crate) fn parse<T: DeserializeOwned + Default>(
    workload: &'static str,
    params: &Value,
) -> Result<T, WorkloadError> {
    match params {
        Value::Null => Ok(T::default()),
        Value::Object(_) => serde_json::from_value(params.clone())
            .map_err(|e| WorkloadError::params(workload, e.to_string())),
        other => Err(WorkloadError::params(
            workload,
            format!("params must be a JSON object, got {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct P {
        seed: u64,
    }

    #[test]
    fn null_is_default_and_types_are_checked() {
        assert_eq!(parse::<P>("w", &Value::Null).unwrap(), P::default());
        assert_eq!(parse::<P>("w", &json!({"seed": 7})).unwrap(), P { seed: 7 });
        let err = parse::<P>("w", &json!({"seed": "abc"})).unwrap_err();
        assert!(
            err.to_string().contains("w: invalid params: invalid type"),
            "{err}"
        );
        let err = parse::<P>("w", &json!({"sede": 1})).unwrap_err();
        assert!(err.to_string().contains("unknown field `sede`"), "{err}");
        let err = parse::<P>("w", &json!([1])).unwrap_err();
        assert!(err.to_string().contains("must be a JSON object"), "{err}");
    }
}

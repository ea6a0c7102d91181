//! Definition JSON → typed → JSON is stable, and committed definitions match the builder.

mod common;

use propack_step_functions::{StateMachine, build_definition, presets};
use serde_json::{Value, json};

#[test]
fn committed_definitions_round_trip_byte_for_byte() {
    let files = common::committed_files();
    assert!(
        files.len() >= 4,
        "expected the committed definitions, found {files:?}"
    );
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let typed =
            StateMachine::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            typed.to_json_pretty(),
            text,
            "{} is not stable through the typed model",
            path.display()
        );
        let again = StateMachine::from_json(&typed.to_json_pretty()).unwrap();
        assert_eq!(again, typed);
    }
}

#[test]
fn committed_definitions_match_the_builder() {
    for (file, opts) in presets::committed() {
        let path = common::definitions_dir().join(&file);
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo run -p propack-step-functions --example regenerate`",
                path.display()
            )
        });
        let built = build_definition(&opts).unwrap().definition.to_json_pretty();
        assert!(
            committed == built,
            "{} drifted from the builder; run `cargo run -p propack-step-functions --example regenerate`",
            path.display()
        );
    }
}

#[test]
fn generated_definitions_round_trip() {
    for (name, def) in common::built_variants() {
        let value = def.to_value();
        let back: StateMachine =
            serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, def, "{name}");
        assert_eq!(back.to_value(), value, "{name}");
    }
}

#[test]
fn hand_written_asl_outside_the_generated_shapes_round_trips() {
    // Fields the builder never emits but ASL allows and the model must keep.
    let v = json!({
        "Comment": "all supported state types",
        "StartAt": "P",
        "TimeoutSeconds": 3600,
        "States": {
            "P": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": null, "InputPath": "$.a", "OutputPath": null, "Next": "M"},
            "M": {
                "Type": "Map", "ItemsPath": "$.items", "ItemSelector": {"v.$": "$$.Map.Item.Value"},
                "MaxConcurrency": 0, "ResultSelector": {"n.$": "$[0]"}, "ResultPath": "$.out",
                "ItemProcessor": {"StartAt": "T", "States": {
                    "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                          "Parameters": {"FunctionName": "f", "Payload.$": "$"},
                          "TimeoutSeconds": 60, "HeartbeatSeconds": 10,
                          "Retry": [{"ErrorEquals": ["States.ALL"]}],
                          "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": null, "Next": "F"}],
                          "End": true},
                    "F": {"Type": "Fail", "Error": "E", "Cause": "c"}
                }},
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "S"}],
                "Next": "S"
            },
            "S": {"Type": "Succeed"}
        }
    });
    let typed: StateMachine = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(typed.to_value(), v);
}

#[test]
fn unsupported_constructs_are_refused_by_name() {
    let v = json!({"StartAt": "W", "States": {"W": {"Type": "Map", "Iterator": {}, "End": true}}});
    let err = serde_json::from_value::<StateMachine>(v)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Iterator"), "{err}");
    let v: Value = json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": []}}});
    let err = serde_json::from_value::<StateMachine>(v)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Choice"), "{err}");
}

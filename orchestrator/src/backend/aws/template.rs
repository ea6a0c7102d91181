//! `orchestrator template`: what `deploy` creates, as an AWS SAM or CloudFormation template.
//!
//! The IAM policies come from the same [`PolicyScope`] builder `deploy` prints, scoped to
//! `${AWS::Region}`, `${AWS::AccountId}` and the template's parameters and wrapped in
//! `Fn::Sub`; the state machine is the generated definition with the function's ARN
//! wired through `DefinitionSubstitutions` (`${PackedFunctionArn}`), so no ARN is edited
//! by hand. YAML output is JSON-compatible YAML: every string double-quoted with JSON
//! escapes, which YAML 1.2 reads identically.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::package::EXEC_WRAPPER_PATH;
use super::policy::PolicyScope;

/// Which dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateFormat {
    /// AWS SAM (`Transform: AWS::Serverless-2016-10-31`, `CodeUri` from the local zip).
    Sam,
    /// Plain CloudFormation (code from an S3 location given as parameters).
    CloudFormation,
}

/// The placeholder the definition uses for the function's ARN.
pub const FUNCTION_ARN_VAR: &str = "PackedFunctionArn";

/// Everything a template describes.
#[derive(Debug, Clone)]
pub struct TemplateSpec {
    /// SAM or CloudFormation.
    pub format: TemplateFormat,
    /// `provided.al2023`, `provided.al2`, or a managed runtime (`python3.13`, `nodejs22.x`).
    pub runtime: String,
    /// The handler of a managed runtime (`app.handler`); `bootstrap` for custom runtimes.
    pub handler: String,
    /// The zip `orchestrator package` wrote (SAM `CodeUri`).
    pub code_uri: String,
    /// Default memory, MB.
    pub memory_mb: u32,
    /// /tmp size, MB.
    pub ephemeral_mb: u32,
    /// Extra layer ARNs (a managed runtime needs the ProPack layer among them).
    pub layers: Vec<String>,
    /// The function's environment.
    pub env: BTreeMap<String, String>,
    /// Log retention, days.
    pub log_retention_days: u32,
    /// The packed-Map definition, built with the function `${PackedFunctionArn}`.
    pub definition: String,
}

/// Whether `runtime` is one of Lambda's OS-only runtimes (the function is `bootstrap`).
pub fn is_custom_runtime(runtime: &str) -> bool {
    runtime.starts_with("provided")
}

/// The policy scope the template's roles use: the same builder as `deploy`, with
/// CloudFormation's pseudo parameters and the template's parameters as names.
pub fn template_scope() -> PolicyScope {
    PolicyScope {
        region: "${AWS::Region}".into(),
        account: "${AWS::AccountId}".into(),
        bucket: "${BucketName}".into(),
        prefix: "propack/runs".into(),
        function: "${FunctionName}".into(),
        state_machine: "${StateMachineName}".into(),
        layer_name: None,
        layer_arns: Vec::new(),
        code_objects: Vec::new(),
    }
}

/// Wraps every string holding a `${...}` in `Fn::Sub`.
fn sub_strings(v: Value) -> Value {
    match v {
        Value::String(s) if s.contains("${") => json!({ "Fn::Sub": s }),
        Value::Array(a) => Value::Array(a.into_iter().map(sub_strings).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, sub_strings(v))).collect())
        }
        other => other,
    }
}

fn role(name: &str, policy: Value) -> Value {
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": PolicyScope::trust_policy(),
            "Policies": [{ "PolicyName": name, "PolicyDocument": sub_strings(policy) }]
        }
    })
}

fn parameters(format: TemplateFormat, memory_mb: u32) -> Value {
    let mut p = json!({
        "BucketName": {"Type": "String", "Description": "Bucket for run inputs, manifests, outputs and results"},
        "FunctionName": {"Type": "String", "Default": "propack", "Description": "The packed function's name"},
        "StateMachineName": {"Type": "String", "Default": "propack", "Description": "The state machine's name"},
        "MemorySize": {"Type": "Number", "Default": memory_mb, "MinValue": 128, "MaxValue": 10240,
                        "Description": "Function memory, MB (1 vCPU per 1,769 MB; 6 at 10,240)"},
        "Architecture": {"Type": "String", "Default": "x86_64", "AllowedValues": ["x86_64", "arm64"],
                          "Description": "Must match the zip orchestrator package built"}
    });
    if format == TemplateFormat::CloudFormation {
        p["CodeBucket"] =
            json!({"Type": "String", "Description": "Bucket holding the function zip"});
        p["CodeKey"] = json!({"Type": "String", "Description": "Key of the function zip"});
    }
    p
}

fn function(spec: &TemplateSpec) -> Value {
    let mut env = spec.env.clone();
    if !is_custom_runtime(&spec.runtime) {
        env.insert("AWS_LAMBDA_EXEC_WRAPPER".into(), EXEC_WRAPPER_PATH.into());
    }
    let mut props = json!({
        "FunctionName": {"Ref": "FunctionName"},
        "Runtime": spec.runtime,
        "Handler": spec.handler,
        "Architectures": [{"Ref": "Architecture"}],
        "MemorySize": {"Ref": "MemorySize"},
        "EphemeralStorage": {"Size": spec.ephemeral_mb},
        "Timeout": 900,
        "Role": {"Fn::GetAtt": ["FunctionRole", "Arn"]},
        "LoggingConfig": {"LogGroup": {"Ref": "FunctionLogGroup"}}
    });
    if !spec.layers.is_empty() {
        props["Layers"] = json!(spec.layers);
    }
    if !env.is_empty() {
        props["Environment"] = json!({ "Variables": env });
    }
    let kind = match spec.format {
        TemplateFormat::Sam => {
            props["CodeUri"] = json!(spec.code_uri);
            "AWS::Serverless::Function"
        }
        TemplateFormat::CloudFormation => {
            props["Code"] = json!({"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}});
            "AWS::Lambda::Function"
        }
    };
    let mut resource = json!({ "Type": kind, "Properties": props });
    if spec.runtime == "provided.al2" {
        // Lambda deprecated provided.al2 on 2026-07-31; whoever asks for it (glibc 2.26 binaries)
        // knows, so cfn-lint's deprecation warning is silenced here and only here.
        resource["Metadata"] = json!({"cfn-lint": {"config": {"ignore_checks": ["W2531"]}}});
    }
    resource
}

/// The template as a JSON value (render it with [`to_yaml`] or `serde_json`).
pub fn template(spec: &TemplateSpec) -> Value {
    let scope = template_scope();
    let example_input = serde_json::to_string(
        &propack_step_functions::manifest::distributed_input("example-run", "${BucketName}"),
    )
    .expect("execution inputs serialise");
    let mut resources = Map::new();
    resources.insert(
        "FunctionLogGroup".into(),
        json!({
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": {"Fn::Sub": "/aws/lambda/${FunctionName}"},
                "RetentionInDays": spec.log_retention_days
            }
        }),
    );
    resources.insert(
        "FunctionRole".into(),
        role("propack-function", scope.function_policy()),
    );
    resources.insert(
        "StateMachineRole".into(),
        role("propack-state-machine", scope.state_machine_policy()),
    );
    resources.insert("PackedFunction".into(), function(spec));
    resources.insert(
        "StateMachine".into(),
        json!({
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "StateMachineName": {"Ref": "StateMachineName"},
                "StateMachineType": "STANDARD",
                "RoleArn": {"Fn::GetAtt": ["StateMachineRole", "Arn"]},
                "DefinitionString": spec.definition,
                "DefinitionSubstitutions": {
                    FUNCTION_ARN_VAR: {"Fn::GetAtt": ["PackedFunction", "Arn"]}
                }
            }
        }),
    );
    let mut t = Map::new();
    t.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
    if spec.format == TemplateFormat::Sam {
        t.insert("Transform".into(), json!("AWS::Serverless-2016-10-31"));
    }
    t.insert(
        "Description".into(),
        json!("ProPack: a packed function and the Step Functions state machine that runs k tasks per instance"),
    );
    t.insert("Parameters".into(), parameters(spec.format, spec.memory_mb));
    t.insert("Resources".into(), Value::Object(resources));
    t.insert(
        "Outputs".into(),
        json!({
            "FunctionArn": {"Description": "The packed function", "Value": {"Fn::GetAtt": ["PackedFunction", "Arn"]}},
            "StateMachineArn": {"Description": "Start executions here (console or launch --backend aws --state-machine ARN)",
                                "Value": {"Ref": "StateMachine"}},
            "ExecutionInput": {"Description": "The execution input to paste in the console (upload the task manifest to its manifest_key first)",
                               "Value": {"Fn::Sub": example_input}}
        }),
    );
    Value::Object(t)
}

/// JSON-compatible YAML: block maps and lists, strings double-quoted with JSON escapes.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    yaml_value(&mut out, v, 0, false);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        other => serde_json::to_string(other).expect("JSON scalars serialise"),
    }
}

fn is_block(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

fn yaml_value(out: &mut String, v: &Value, indent: usize, inline_first: bool) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (i, (k, val)) in m.iter().enumerate() {
                if !(inline_first && i == 0) {
                    out.push_str(&pad);
                }
                out.push_str(&serde_json::to_string(k).expect("keys serialise"));
                out.push(':');
                if is_block(val) {
                    out.push('\n');
                    yaml_value(out, val, indent + 2, false);
                } else {
                    out.push(' ');
                    out.push_str(&scalar(val));
                    out.push('\n');
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                out.push_str(&pad);
                out.push_str("- ");
                if is_block(item) {
                    match item {
                        Value::Object(_) => yaml_value(out, item, indent + 2, true),
                        _ => {
                            out.push('\n');
                            yaml_value(out, item, indent + 2, false);
                        }
                    }
                } else {
                    out.push_str(&scalar(item));
                    out.push('\n');
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_is_block_style_with_json_strings() {
        let v = json!({"A": {"B": [1, "x\"y", {"C": [], "D": {"E": true}}], "F": {}}});
        assert_eq!(
            to_yaml(&v),
            "\"A\":\n  \"B\":\n    - 1\n    - \"x\\\"y\"\n    - \"C\": []\n      \"D\":\n        \"E\": true\n  \"F\": {}\n"
        );
    }

    /// Resolves `Fn::Sub` the way CloudFormation would for the given values.
    fn resolve(v: &Value, vars: &[(&str, &str)]) -> Value {
        match v {
            Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => {
                let mut s = m["Fn::Sub"].as_str().unwrap().to_owned();
                for (k, val) in vars {
                    s = s.replace(&format!("${{{k}}}"), val);
                }
                assert!(!s.contains("${"), "unresolved: {s}");
                Value::String(s)
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), resolve(v, vars)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(|v| resolve(v, vars)).collect()),
            other => other.clone(),
        }
    }

    fn spec(format: TemplateFormat) -> TemplateSpec {
        TemplateSpec {
            format,
            runtime: "provided.al2023".into(),
            handler: "bootstrap".into(),
            code_uri: "dist/f.zip".into(),
            memory_mb: 10240,
            ephemeral_mb: 10240,
            layers: vec![],
            env: BTreeMap::new(),
            log_retention_days: 14,
            definition: "{}".into(),
        }
    }

    #[test]
    fn the_template_grants_exactly_what_deploy_prints() {
        let vars = [
            ("AWS::Region", "eu-west-1"),
            ("AWS::AccountId", "123456789012"),
            ("BucketName", "my-bucket"),
            ("FunctionName", "fn"),
            ("StateMachineName", "sm"),
        ];
        // What `deploy --function fn --state-machine sm --bucket my-bucket` prints in that account.
        let deploy = PolicyScope {
            region: "eu-west-1".into(),
            account: "123456789012".into(),
            bucket: "my-bucket".into(),
            prefix: "propack/runs".into(),
            function: "fn".into(),
            state_machine: "sm".into(),
            layer_name: None,
            layer_arns: vec![],
            code_objects: vec![],
        };
        for format in [TemplateFormat::Sam, TemplateFormat::CloudFormation] {
            let t = resolve(&template(&spec(format)), &vars);
            let r = &t["Resources"];
            let policy =
                |role: &str| r[role]["Properties"]["Policies"][0]["PolicyDocument"].clone();
            assert_eq!(policy("FunctionRole"), deploy.function_policy());
            assert_eq!(policy("StateMachineRole"), deploy.state_machine_policy());
            assert!(
                !t.to_string().contains("\"Resource\":\"*\""),
                "no wildcard resources"
            );
            assert_eq!(
                r["FunctionLogGroup"]["Properties"]["LogGroupName"],
                "/aws/lambda/fn"
            );
        }
    }

    #[test]
    fn sam_takes_the_local_zip_and_cloudformation_an_s3_location() {
        let sam = template(&spec(TemplateFormat::Sam));
        assert_eq!(sam["Transform"], "AWS::Serverless-2016-10-31");
        let f = &sam["Resources"]["PackedFunction"];
        assert_eq!(f["Type"], "AWS::Serverless::Function");
        assert_eq!(f["Properties"]["CodeUri"], "dist/f.zip");
        let cfn = template(&spec(TemplateFormat::CloudFormation));
        assert!(cfn.get("Transform").is_none());
        let f = &cfn["Resources"]["PackedFunction"];
        assert_eq!(f["Type"], "AWS::Lambda::Function");
        assert_eq!(f["Properties"]["Code"]["S3Key"], json!({"Ref": "CodeKey"}));
        let mut managed = spec(TemplateFormat::Sam);
        managed.runtime = "python3.13".into();
        let env = &template(&managed)["Resources"]["PackedFunction"]["Properties"]["Environment"];
        assert_eq!(
            env["Variables"]["AWS_LAMBDA_EXEC_WRAPPER"],
            EXEC_WRAPPER_PATH
        );
    }

    #[test]
    fn policy_strings_with_variables_become_fn_sub() {
        let v = sub_strings(json!({"Resource": ["arn:aws:s3:::${BucketName}/x", "plain"]}));
        assert_eq!(
            v,
            json!({"Resource": [{"Fn::Sub": "arn:aws:s3:::${BucketName}/x"}, "plain"]})
        );
    }
}

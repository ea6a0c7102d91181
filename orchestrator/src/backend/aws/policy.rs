//! The least-privilege IAM policies ProPack needs, derived from the names actually deployed.

use serde_json::{Value, json};

/// What the policies are scoped to.
#[derive(Debug, Clone)]
pub struct PolicyScope {
    /// Region, or `*`.
    pub region: String,
    /// Account id, or `*`.
    pub account: String,
    /// The run bucket.
    pub bucket: String,
    /// Key prefix of all runs (`propack/runs`).
    pub prefix: String,
    /// Function name.
    pub function: String,
    /// State machine name.
    pub state_machine: String,
    /// The layer `deploy --layer` publishes, if any.
    pub layer_name: Option<String>,
    /// Existing layer version ARNs `deploy --layers` attaches.
    pub layer_arns: Vec<String>,
    /// Code zips `deploy` uploads through S3, as (bucket, key).
    pub code_objects: Vec<(String, String)>,
}

impl PolicyScope {
    /// The function's ARN (any version or alias too).
    pub fn function_arns(&self) -> Vec<String> {
        let base = format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account, self.function
        );
        vec![base.clone(), format!("{base}:*")]
    }

    /// The state machine's ARN.
    pub fn state_machine_arn(&self) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{}",
            self.region, self.account, self.state_machine
        )
    }

    fn objects(&self) -> String {
        format!(
            "arn:aws:s3:::{}/{}/*",
            self.bucket,
            self.prefix.trim_end_matches('/')
        )
    }

    fn list_bucket(&self) -> Value {
        json!({
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": format!("arn:aws:s3:::{}", self.bucket),
            "Condition": {"StringLike": {"s3:prefix": [format!("{}/*", self.prefix.trim_end_matches('/'))]}}
        })
    }

    /// The function's execution role: read inputs and write outputs under the run prefix, and logs.
    pub fn function_policy(&self) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "RunObjects", "Effect": "Allow",
                 "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                 "Resource": self.objects()},
                self.list_bucket(),
                {"Sid": "Logs", "Effect": "Allow",
                 "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                 "Resource": format!("arn:aws:logs:{}:{}:log-group:/aws/lambda/{}:*", self.region, self.account, self.function)}
            ]
        })
    }

    /// The state machine's role: invoke the function, read the manifest, write results,
    /// and run the Distributed Map's child executions.
    pub fn state_machine_policy(&self) -> Value {
        let sm = self.state_machine_arn();
        let executions = format!(
            "arn:aws:states:{}:{}:execution:{}:*",
            self.region, self.account, self.state_machine
        );
        json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "InvokePackedFunction", "Effect": "Allow", "Action": "lambda:InvokeFunction",
                 "Resource": self.function_arns()},
                {"Sid": "ManifestAndResults", "Effect": "Allow",
                 "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                 "Resource": self.objects()},
                self.list_bucket(),
                {"Sid": "DistributedMapRuns", "Effect": "Allow",
                 "Action": ["states:StartExecution", "states:DescribeExecution", "states:StopExecution"],
                 "Resource": [sm, executions]},
                {"Sid": "MapRunManagement", "Effect": "Allow",
                 "Action": ["states:DescribeMapRun", "states:ListMapRuns", "states:UpdateMapRun"],
                 "Resource": [
                     format!("arn:aws:states:{}:{}:mapRun:{}/*", self.region, self.account, self.state_machine),
                     self.state_machine_arn()
                 ]}
            ]
        })
    }

    /// Trust policy for one role serving both the function and the state machine.
    pub fn trust_policy() -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                "Action": "sts:AssumeRole"
            }]
        })
    }

    /// A layer's ARN (without version: `PublishLayerVersion` is granted on it).
    pub fn layer_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:layer:{name}",
            self.region, self.account
        )
    }

    /// Statements for what only some deploys do: publish and attach layers, upload code
    /// through S3 (Lambda reads the object with the caller's permissions).
    fn code_statements(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut attach: Vec<String> = self.layer_arns.clone();
        if let Some(name) = &self.layer_name {
            out.push(json!({"Sid": "PublishLayer", "Effect": "Allow",
                "Action": "lambda:PublishLayerVersion", "Resource": self.layer_arn(name)}));
            attach.insert(0, format!("{}:*", self.layer_arn(name)));
        }
        if !attach.is_empty() {
            out.push(json!({"Sid": "AttachLayers", "Effect": "Allow",
                "Action": "lambda:GetLayerVersion", "Resource": attach}));
        }
        if !self.code_objects.is_empty() {
            let objects: Vec<String> = self
                .code_objects
                .iter()
                .map(|(b, k)| format!("arn:aws:s3:::{b}/{k}"))
                .collect();
            out.push(json!({"Sid": "UploadCode", "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject"], "Resource": objects}));
        }
        out
    }

    /// What the operator running `orchestrator deploy` and `launch` needs.
    pub fn operator_policy(&self, role_arns: &[String]) -> Value {
        let mut policy = self.base_operator_policy(role_arns);
        if let Some(statements) = policy["Statement"].as_array_mut() {
            statements.extend(self.code_statements());
        }
        policy
    }

    fn base_operator_policy(&self, role_arns: &[String]) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "DeployFunction", "Effect": "Allow",
                 "Action": ["lambda:CreateFunction", "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration",
                            "lambda:GetFunction", "lambda:GetFunctionConfiguration", "lambda:InvokeFunction"],
                 "Resource": self.function_arns()},
                {"Sid": "DeployStateMachine", "Effect": "Allow",
                 "Action": ["states:CreateStateMachine", "states:UpdateStateMachine", "states:StartExecution",
                            "states:DescribeStateMachine"],
                 "Resource": self.state_machine_arn()},
                {"Sid": "FollowRuns", "Effect": "Allow",
                 "Action": ["states:DescribeExecution", "states:ListMapRuns", "states:DescribeMapRun"],
                 "Resource": [
                     format!("arn:aws:states:{}:{}:execution:{}:*", self.region, self.account, self.state_machine),
                     format!("arn:aws:states:{}:{}:mapRun:{}/*", self.region, self.account, self.state_machine)
                 ]},
                {"Sid": "FindStateMachine", "Effect": "Allow", "Action": "states:ListStateMachines", "Resource": "*"},
                {"Sid": "StageRuns", "Effect": "Allow",
                 "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"], "Resource": self.objects()},
                self.list_bucket(),
                {"Sid": "PassRoles", "Effect": "Allow", "Action": "iam:PassRole", "Resource": role_arns}
            ]
        })
    }
}

/// The account id in an ARN (`arn:aws:iam::123456789012:role/x` → `123456789012`).
pub fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> PolicyScope {
        PolicyScope {
            region: "eu-west-1".into(),
            account: "123456789012".into(),
            bucket: "b".into(),
            prefix: "propack/runs".into(),
            function: "propack".into(),
            state_machine: "propack".into(),
            layer_name: None,
            layer_arns: Vec::new(),
            code_objects: Vec::new(),
        }
    }

    fn statement(policy: &Value, sid: &str) -> Option<Value> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .cloned()
    }

    #[test]
    fn layers_and_s3_code_uploads_are_granted_only_when_used() {
        let roles = ["arn:aws:iam::123456789012:role/r".to_owned()];
        let plain = scope().operator_policy(&roles);
        for sid in ["PublishLayer", "AttachLayers", "UploadCode"] {
            assert_eq!(statement(&plain, sid), None, "{sid}");
        }
        let mut s = scope();
        s.layer_name = Some("propack".into());
        s.layer_arns = vec!["arn:aws:lambda:eu-west-1:999999999999:layer:python:3".into()];
        s.code_objects = vec![("code-b".into(), "propack/code/propack/function.zip".into())];
        let p = s.operator_policy(&roles);
        assert_eq!(
            statement(&p, "PublishLayer").unwrap(),
            json!({"Sid": "PublishLayer", "Effect": "Allow", "Action": "lambda:PublishLayerVersion",
                   "Resource": "arn:aws:lambda:eu-west-1:123456789012:layer:propack"})
        );
        assert_eq!(
            statement(&p, "AttachLayers").unwrap()["Resource"],
            json!([
                "arn:aws:lambda:eu-west-1:123456789012:layer:propack:*",
                "arn:aws:lambda:eu-west-1:999999999999:layer:python:3"
            ])
        );
        assert_eq!(
            statement(&p, "UploadCode").unwrap(),
            json!({"Sid": "UploadCode", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
                   "Resource": ["arn:aws:s3:::code-b/propack/code/propack/function.zip"]})
        );
        // The earlier statements are unchanged.
        assert!(statement(&p, "PassRoles").is_some());
    }

    #[test]
    fn policies_are_scoped_to_the_deployed_resources() {
        let s = scope();
        let f = s.function_policy().to_string();
        assert!(f.contains("arn:aws:s3:::b/propack/runs/*"), "{f}");
        assert!(
            !f.contains("\"s3:*\"") && !f.contains("\"Resource\":\"*\""),
            "{f}"
        );
        let sm = s.state_machine_policy().to_string();
        assert!(
            sm.contains("arn:aws:lambda:eu-west-1:123456789012:function:propack"),
            "{sm}"
        );
        assert!(sm.contains("states:StartExecution"), "{sm}");
        assert!(sm.contains("DescribeMapRun"), "{sm}");
        let op = s
            .operator_policy(&["arn:aws:iam::123456789012:role/r".into()])
            .to_string();
        assert!(op.contains("iam:PassRole") && op.contains("role/r"), "{op}");
        assert_eq!(
            account_of("arn:aws:iam::123456789012:role/x"),
            Some("123456789012")
        );
        assert_eq!(account_of("propack"), None);
    }
}

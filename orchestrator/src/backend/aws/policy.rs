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

    /// What the operator running `orchestrator deploy` and `launch` needs.
    pub fn operator_policy(&self, role_arns: &[String]) -> Value {
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
        }
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

//! The CIS AWS Foundations monitoring controls as metric filters, with the pattern text exactly
//! as Security Hub publishes it (`../shared/spec/cis-metric-filters.md`), plus CIS 4.15.

/// One control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    /// Security Hub control id (or the CIS number when there is none).
    pub id: &'static str,
    /// Metric name the pack uses.
    pub metric: &'static str,
    /// What it detects.
    pub title: &'static str,
    /// The filter pattern, verbatim.
    pub pattern: &'static str,
}

/// The pack, in Security Hub's order.
pub const CONTROLS: &[Control] = &[
    Control {
        id: "CloudWatch.1",
        metric: "RootAccountUsage",
        title: "root user activity",
        pattern: r#"{$.userIdentity.type="Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType !="AwsServiceEvent"}"#,
    },
    Control {
        id: "CloudWatch.2",
        metric: "UnauthorizedAPICalls",
        title: "unauthorized API calls",
        pattern: r#"{($.errorCode="*UnauthorizedOperation") || ($.errorCode="AccessDenied*")}"#,
    },
    Control {
        id: "CloudWatch.3",
        metric: "ConsoleSignInWithoutMFA",
        title: "console sign-in without MFA",
        pattern: r#"{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") && ($.userIdentity.type = "IAMUser") && ($.responseElements.ConsoleLogin = "Success") }"#,
    },
    Control {
        id: "CloudWatch.4",
        metric: "IAMPolicyChanges",
        title: "IAM policy changes",
        pattern: r#"{($.eventName=DeleteGroupPolicy) || ($.eventName=DeleteRolePolicy) || ($.eventName=DeleteUserPolicy) || ($.eventName=PutGroupPolicy) || ($.eventName=PutRolePolicy) || ($.eventName=PutUserPolicy) || ($.eventName=CreatePolicy) || ($.eventName=DeletePolicy) || ($.eventName=CreatePolicyVersion) || ($.eventName=DeletePolicyVersion) || ($.eventName=AttachRolePolicy) || ($.eventName=DetachRolePolicy) || ($.eventName=AttachUserPolicy) || ($.eventName=DetachUserPolicy) || ($.eventName=AttachGroupPolicy) || ($.eventName=DetachGroupPolicy)}"#,
    },
    Control {
        id: "CloudWatch.5",
        metric: "CloudTrailConfigChanges",
        title: "CloudTrail configuration changes",
        pattern: r#"{($.eventName=CreateTrail) || ($.eventName=UpdateTrail) || ($.eventName=DeleteTrail) || ($.eventName=StartLogging) || ($.eventName=StopLogging)}"#,
    },
    Control {
        id: "CloudWatch.6",
        metric: "ConsoleAuthenticationFailures",
        title: "console authentication failures",
        pattern: r#"{($.eventName=ConsoleLogin) && ($.errorMessage="Failed authentication")}"#,
    },
    Control {
        id: "CloudWatch.7",
        metric: "DisableOrDeleteCMK",
        title: "disabling or scheduled deletion of customer managed KMS keys",
        pattern: r#"{($.eventSource=kms.amazonaws.com) && (($.eventName=DisableKey) || ($.eventName=ScheduleKeyDeletion))}"#,
    },
    Control {
        id: "CloudWatch.8",
        metric: "S3BucketPolicyChanges",
        title: "S3 bucket policy changes",
        pattern: r#"{($.eventSource=s3.amazonaws.com) && (($.eventName=PutBucketAcl) || ($.eventName=PutBucketPolicy) || ($.eventName=PutBucketCors) || ($.eventName=PutBucketLifecycle) || ($.eventName=PutBucketReplication) || ($.eventName=DeleteBucketPolicy) || ($.eventName=DeleteBucketCors) || ($.eventName=DeleteBucketLifecycle) || ($.eventName=DeleteBucketReplication))}"#,
    },
    Control {
        id: "CloudWatch.9",
        metric: "AWSConfigChanges",
        title: "AWS Config configuration changes",
        pattern: r#"{($.eventSource=config.amazonaws.com) && (($.eventName=StopConfigurationRecorder) || ($.eventName=DeleteDeliveryChannel) || ($.eventName=PutDeliveryChannel) || ($.eventName=PutConfigurationRecorder))}"#,
    },
    Control {
        id: "CloudWatch.10",
        metric: "SecurityGroupChanges",
        title: "security group changes",
        pattern: r#"{($.eventName=AuthorizeSecurityGroupIngress) || ($.eventName=AuthorizeSecurityGroupEgress) || ($.eventName=RevokeSecurityGroupIngress) || ($.eventName=RevokeSecurityGroupEgress) || ($.eventName=CreateSecurityGroup) || ($.eventName=DeleteSecurityGroup)}"#,
    },
    Control {
        id: "CloudWatch.11",
        metric: "NACLChanges",
        title: "network ACL changes",
        pattern: r#"{($.eventName=CreateNetworkAcl) || ($.eventName=CreateNetworkAclEntry) || ($.eventName=DeleteNetworkAcl) || ($.eventName=DeleteNetworkAclEntry) || ($.eventName=ReplaceNetworkAclEntry) || ($.eventName=ReplaceNetworkAclAssociation)}"#,
    },
    Control {
        id: "CloudWatch.12",
        metric: "NetworkGatewayChanges",
        title: "network gateway changes",
        pattern: r#"{($.eventName=CreateCustomerGateway) || ($.eventName=DeleteCustomerGateway) || ($.eventName=AttachInternetGateway) || ($.eventName=CreateInternetGateway) || ($.eventName=DeleteInternetGateway) || ($.eventName=DetachInternetGateway)}"#,
    },
    Control {
        id: "CloudWatch.13",
        metric: "RouteTableChanges",
        title: "route table changes",
        pattern: r#"{($.eventName=CreateRoute) || ($.eventName=CreateRouteTable) || ($.eventName=ReplaceRoute) || ($.eventName=ReplaceRouteTableAssociation) || ($.eventName=DeleteRouteTable) || ($.eventName=DeleteRoute) || ($.eventName=DisassociateRouteTable)}"#,
    },
    Control {
        id: "CloudWatch.14",
        metric: "VPCChanges",
        title: "VPC changes",
        pattern: r#"{($.eventName=CreateVpc) || ($.eventName=DeleteVpc) || ($.eventName=ModifyVpcAttribute) || ($.eventName=AcceptVpcPeeringConnection) || ($.eventName=CreateVpcPeeringConnection) || ($.eventName=DeleteVpcPeeringConnection) || ($.eventName=RejectVpcPeeringConnection) || ($.eventName=AttachClassicLinkVpc) || ($.eventName=DetachClassicLinkVpc) || ($.eventName=DisableVpcClassicLink) || ($.eventName=EnableVpcClassicLink)}"#,
    },
    Control {
        id: "CIS-4.15",
        metric: "OrganizationsChanges",
        title: "AWS Organizations changes",
        pattern: r#"{ ($.eventSource = organizations.amazonaws.com) && (($.eventName = "AcceptHandshake") || ($.eventName = "AttachPolicy") || ($.eventName = "CreateAccount") || ($.eventName = "CreateOrganizationalUnit") || ($.eventName = "CreatePolicy") || ($.eventName = "DeclineHandshake") || ($.eventName = "DeleteOrganization") || ($.eventName = "DeleteOrganizationalUnit") || ($.eventName = "DeletePolicy") || ($.eventName = "DetachPolicy") || ($.eventName = "DisablePolicyType") || ($.eventName = "EnablePolicyType") || ($.eventName = "InviteAccountToOrganization") || ($.eventName = "LeaveOrganization") || ($.eventName = "MoveAccount") || ($.eventName = "RemoveAccountFromOrganization") || ($.eventName = "UpdatePolicy") || ($.eventName = "UpdateOrganizationalUnit")) }"#,
    },
];

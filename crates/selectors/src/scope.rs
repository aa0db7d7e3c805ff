//! Which regions' events a trail records (spec §2.4, §2.5, §6.4).
//!
//! A single-region trail records its home region only; a multi-region trail records every
//! region. Events of global services are recorded in `us-east-1` and reach a trail only when
//! it includes global service events **and** records `us-east-1`.

use serde::{Deserialize, Serialize};

/// The region where global services' events are recorded.
pub const GLOBAL_REGION: &str = "us-east-1";

/// Event sources of global services (their events are recorded in us-east-1).
pub const GLOBAL_SERVICE_SOURCES: &[&str] = &[
    "cloudfront.amazonaws.com",
    "globalaccelerator.amazonaws.com",
    "iam.amazonaws.com",
    "organizations.amazonaws.com",
    "route53.amazonaws.com",
    "shield.amazonaws.com",
    "signin.amazonaws.com",
    "sts.amazonaws.com",
    "waf.amazonaws.com",
];

/// A trail's region settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrailScope {
    /// The region the trail was created in.
    pub home_region: String,
    /// Records every region.
    pub is_multi_region_trail: bool,
    /// Records global services' events.
    pub include_global_service_events: bool,
}

impl TrailScope {
    /// Whether an event recorded in `region` by `event_source` is in the trail's scope.
    pub fn covers(&self, region: &str, event_source: &str) -> bool {
        let records_region = self.is_multi_region_trail || region == self.home_region;
        if !records_region {
            return false;
        }
        let global = region == GLOBAL_REGION && GLOBAL_SERVICE_SOURCES.contains(&event_source);
        !global || self.include_global_service_events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_and_global_matrix() {
        let scope = |home: &str, multi, global| TrailScope {
            home_region: home.into(),
            is_multi_region_trail: multi,
            include_global_service_events: global,
        };
        // (scope, event region, event source, covered)
        let cases = [
            (
                scope("eu-west-1", false, true),
                "eu-west-1",
                "ec2.amazonaws.com",
                true,
            ),
            (
                scope("eu-west-1", false, true),
                "us-east-1",
                "ec2.amazonaws.com",
                false,
            ),
            (
                scope("eu-west-1", false, true),
                "us-east-1",
                "iam.amazonaws.com",
                false,
            ),
            (
                scope("eu-west-1", true, true),
                "us-east-1",
                "iam.amazonaws.com",
                true,
            ),
            (
                scope("eu-west-1", true, false),
                "us-east-1",
                "iam.amazonaws.com",
                false,
            ),
            (
                scope("eu-west-1", true, false),
                "us-east-1",
                "ec2.amazonaws.com",
                true,
            ),
            (
                scope("us-east-1", false, true),
                "us-east-1",
                "signin.amazonaws.com",
                true,
            ),
            (
                scope("us-east-1", false, false),
                "us-east-1",
                "signin.amazonaws.com",
                false,
            ),
            (
                scope("us-east-1", false, false),
                "us-east-1",
                "s3.amazonaws.com",
                true,
            ),
            (
                scope("us-east-1", false, false),
                "ap-south-1",
                "iam.amazonaws.com",
                false,
            ),
            (
                scope("eu-west-1", true, false),
                "eu-west-1",
                "iam.amazonaws.com",
                true,
            ),
        ];
        for (scope, region, source, covered) in cases {
            assert_eq!(
                scope.covers(region, source),
                covered,
                "{scope:?} {region} {source}"
            );
        }
    }
}

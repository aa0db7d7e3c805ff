"""Drives Cairn's CloudTrail API with the real boto3 `cloudtrail` client: every operation Cairn
serves, the paginators, and the errors. Prints one JSON object of what boto3 parsed.

Usage: cloudtrail_api.py ENDPOINT ACCESS_KEY SECRET READER_KEY READER_SECRET BUCKET
"""
import base64
import json
import sys

import boto3
import botocore.exceptions

endpoint, key, secret, reader_key, reader_secret, bucket = sys.argv[1:7]


def client(key_id, secret_key, region="us-east-1"):
    return boto3.client(
        "cloudtrail",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret_key,
    )


ct = client(key, secret)
out = {}


def error_of(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return {
            "code": e.response["Error"]["Code"],
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            "message": e.response["Error"].get("Message", ""),
        }
    return None


created = ct.create_trail(
    Name="boto-trail",
    S3BucketName=bucket,
    S3KeyPrefix="boto",
    IsMultiRegionTrail=True,
    EnableLogFileValidation=True,
)
out["create"] = {k: v for k, v in created.items() if k != "ResponseMetadata"}
ct.create_trail(Name="second-trail", S3BucketName=bucket)
out["update"] = {
    k: v
    for k, v in ct.update_trail(Name="second-trail", S3KeyPrefix="p2").items()
    if k != "ResponseMetadata"
}
out["describe"] = ct.describe_trails()["trailList"]
out["describe_one"] = ct.describe_trails(trailNameList=["boto-trail"])["trailList"]
out["get"] = ct.get_trail(Name="boto-trail")["Trail"]
ct.start_logging(Name="boto-trail")
status = ct.get_trail_status(Name="boto-trail")
out["status_logging"] = status["IsLogging"]
out["status_has_start_time"] = "StartLoggingTime" in status
pages = list(ct.get_paginator("list_trails").paginate())
out["list_trails"] = [t["Name"] for p in pages for t in p["Trails"]]
selectors = ct.put_event_selectors(
    TrailName="boto-trail",
    EventSelectors=[
        {
            "ReadWriteType": "WriteOnly",
            "IncludeManagementEvents": True,
            "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::photos/"]}],
        }
    ],
)
out["put_selectors"] = selectors["EventSelectors"]
out["get_selectors"] = ct.get_event_selectors(TrailName="boto-trail")["EventSelectors"]
advanced = ct.put_event_selectors(
    TrailName="second-trail",
    AdvancedEventSelectors=[
        {
            "Name": "writes",
            "FieldSelectors": [
                {"Field": "eventCategory", "Equals": ["Management"]},
                {"Field": "readOnly", "Equals": ["false"]},
            ],
        }
    ],
)
out["advanced"] = advanced["AdvancedEventSelectors"]
ct.stop_logging(Name="boto-trail")
out["status_stopped"] = ct.get_trail_status(Name="boto-trail")["IsLogging"]

# LookupEvents, paginated two at a time: the calls above are in Event history.
paginator = ct.get_paginator("lookup_events")
names = []
page_count = 0
for page in paginator.paginate(
    LookupAttributes=[{"AttributeKey": "EventSource", "AttributeValue": "cloudtrail.amazonaws.com"}],
    PaginationConfig={"PageSize": 2},
):
    page_count += 1
    for event in page["Events"]:
        names.append(event["EventName"])
        if event["EventName"] == "CreateTrail" and "create_event" not in out:
            out["create_event"] = json.loads(event["CloudTrailEvent"])
out["lookup_names"] = names
out["lookup_pages"] = page_count
keys = ct.list_public_keys()["PublicKeyList"]
# boto3 decodes the blob: the DER bytes, base64 on the wire.
out["public_keys"] = [
    {"Fingerprint": k["Fingerprint"], "Value": base64.b64encode(k["Value"]).decode()[:12]}
    for k in keys
]

# Errors.
out["errors"] = {
    "unknown_trail": error_of(lambda: ct.get_trail(Name="no-such-trail")),
    "bad_name": error_of(lambda: ct.create_trail(Name="-bad", S3BucketName=bucket)),
    "exists": error_of(lambda: ct.create_trail(Name="boto-trail", S3BucketName=bucket)),
    "wrong_secret": error_of(lambda: client(key, "x" * 40).describe_trails()),
    "unknown_key": error_of(lambda: client("AKIAUNKNOWNUNKNOWN00", secret).describe_trails()),
    "denied": error_of(
        lambda: client(reader_key, reader_secret).create_trail(Name="nope", S3BucketName=bucket)
    ),
    "bad_time_range": error_of(
        lambda: ct.lookup_events(StartTime=2000000000, EndTime=1000000000)
    ),
}
out["reader_can_read"] = len(client(reader_key, reader_secret).describe_trails()["trailList"])
ct.delete_trail(Name="second-trail")
out["after_delete"] = [t["Name"] for t in ct.list_trails()["Trails"]]
print(json.dumps(out, default=str))

"""Drives Cairn's PutAuditEvents with the real boto3 `cloudtrail-data` client.

Usage: put_audit_events.py ENDPOINT ACCOUNT_ID ACCESS_KEY_ID SECRET. Prints one JSON object with
what boto3 parsed.
"""
import datetime
import json
import sys

import boto3

endpoint, account, key_id, secret = sys.argv[1:5]
client = boto3.client(
    "cloudtrail-data",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=key_id,
    aws_secret_access_key=secret,
)
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
data = json.dumps(
    {
        "version": "1.0",
        "userIdentity": {"type": "CustomUser", "principalId": "boto-user"},
        "eventSource": "billing.example",
        "eventName": "ApproveInvoice",
        "eventTime": now,
        "UID": "boto-1",
        "recipientAccountId": account,
    }
)
channel = f"arn:aws:cloudtrail:us-east-1:{account}:channel/boto"
first = client.put_audit_events(
    channelArn=channel,
    auditEvents=[{"id": "one", "eventData": data}, {"id": "two", "eventData": "{}"}],
)
retry = client.put_audit_events(channelArn=channel, auditEvents=[{"id": "one", "eventData": data}])
try:
    client.put_audit_events(
        channelArn="arn:aws:cloudtrail:us-east-1:999999999999:channel/x",
        auditEvents=[{"id": "one", "eventData": data}],
    )
    denied = None
except client.exceptions.ChannelInsufficientPermission as error:
    denied = error.response["Error"]["Code"]
print(
    json.dumps(
        {
            "successful": first["successful"],
            "failed": first["failed"],
            "retry": retry["successful"],
            "denied": denied,
        }
    )
)

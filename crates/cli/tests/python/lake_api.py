"""Drives Cairn's Lake with the real boto3 `cloudtrail` client: event data stores and
StartQuery / DescribeQuery / GetQueryResults, and the errors. Prints one JSON object of what
boto3 parsed.

Usage: lake_api.py ENDPOINT ACCESS_KEY SECRET READER_KEY READER_SECRET SINCE UNTIL
"""
import json
import sys
import time

import boto3
import botocore.config
import botocore.exceptions

endpoint, key, secret, reader_key, reader_secret, since, until = sys.argv[1:8]


def client(key_id, secret_key):
    return boto3.client(
        "cloudtrail",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret_key,
        # The server's checks are under test, not botocore's.
        config=botocore.config.Config(parameter_validation=False),
    )


ct = client(key, secret)
reader = client(reader_key, reader_secret)
out = {}


def error_of(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return {
            "code": e.response["Error"]["Code"],
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        }
    return None


created = ct.create_event_data_store(
    Name="boto-store",
    RetentionPeriod=30,
    TerminationProtectionEnabled=False,
    AdvancedEventSelectors=[
        {
            "Name": "management",
            "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}],
        }
    ],
)
out["create"] = {
    "Name": created["Name"],
    "Arn": created["EventDataStoreArn"],
    "RetentionPeriod": created["RetentionPeriod"],
    "Status": created["Status"],
}
out["list"] = sorted(s["Name"] for s in ct.list_event_data_stores()["EventDataStores"])
out["get_by_arn"] = ct.get_event_data_store(EventDataStore=created["EventDataStoreArn"])["Name"]
out["update_retention"] = ct.update_event_data_store(
    EventDataStore="boto-store", RetentionPeriod=90
)["RetentionPeriod"]
out["bad_retention"] = error_of(
    lambda: ct.update_event_data_store(EventDataStore="boto-store", RetentionPeriod=3)
)
out["missing_store"] = error_of(lambda: ct.get_event_data_store(EventDataStore="nope"))

# A query over the store the test filled ("audit"), run by the reader.
sql = (
    "SELECT eventSource, count(*) AS n FROM audit "
    f"WHERE eventTime >= TIMESTAMP '{since}' AND eventTime < TIMESTAMP '{until}' "
    "GROUP BY eventSource ORDER BY n DESC, eventSource"
)
qid = reader.start_query(QueryStatement=sql)["QueryId"]
while True:
    d = reader.describe_query(QueryId=qid)
    if d["QueryStatus"] not in ("QUEUED", "RUNNING"):
        break
    time.sleep(0.1)
out["describe"] = {
    "QueryStatus": d["QueryStatus"],
    "EventsMatched": d["QueryStatistics"]["EventsMatched"],
    "EventsScanned": d["QueryStatistics"]["EventsScanned"],
    "BytesScanned": d["QueryStatistics"]["BytesScanned"],
    "HasTime": "ExecutionTimeInMillis" in d["QueryStatistics"],
    "QueryString": d["QueryString"],
}
rows = []
token = None
pages = 0
while True:
    kwargs = {"QueryId": qid, "MaxQueryResults": 2}
    if token:
        kwargs["NextToken"] = token
    page = reader.get_query_results(**kwargs)
    pages += 1
    rows.extend(page["QueryResultRows"])
    token = page.get("NextToken")
    if not token:
        break
out["rows"] = rows
out["pages"] = pages
out["bad_sql"] = error_of(lambda: ct.start_query(QueryStatement="SELEC nonsense"))
out["unknown_table"] = error_of(lambda: ct.start_query(QueryStatement="SELECT * FROM nowhere"))
out["ddl"] = error_of(lambda: ct.start_query(QueryStatement="DROP TABLE audit"))
out["unknown_query"] = error_of(
    lambda: ct.describe_query(QueryId="00000000-0000-0000-0000-000000000000")
)
out["reader_cannot_create"] = error_of(lambda: reader.create_event_data_store(Name="sneaky"))
out["protected"] = error_of(lambda: ct.delete_event_data_store(EventDataStore="audit"))
ct.delete_event_data_store(EventDataStore="boto-store")
out["after_delete"] = sorted(s["Name"] for s in ct.list_event_data_stores()["EventDataStores"])
print(json.dumps(out))

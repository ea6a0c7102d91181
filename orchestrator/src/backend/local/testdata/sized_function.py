#!/usr/bin/env python3
# A stand-in function for the payload-limit tests: it speaks the Lambda Runtime API and
# answers each event {"respond_bytes": N} with a JSON string of exactly N bytes, ignoring
# any result budget (the real runtime fits its results, so it cannot go over). Every other
# event gets {"received_bytes": <request size>}. How the Runtime API answered each
# response post is appended to $RUNTIME_API_ANSWERS, if set, as "<status> <body>".
import json, os, urllib.error, urllib.request

api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
answers = os.environ.get("RUNTIME_API_ANSWERS")
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        raw = r.read()
    ev = json.loads(raw)
    n = ev.get("respond_bytes") if isinstance(ev, dict) else None
    body = (b'"' + b"a" * (n - 2) + b'"') if n else json.dumps({"received_bytes": len(raw)}).encode()
    req = urllib.request.Request(api + rid + "/response", data=body, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if answers:
        with open(answers, "a") as f:
            f.write(f"{status} {text}\n")

#!/usr/bin/env python3
# A stand-in function for the Lambda emulator's tests: it answers each event with what the
# instance saw (request headers, environment, working directory, the event), or, as the
# event asks, posts an error ("error"), sleeps past its timeout ("sleep_s"), exits ("exit"), or
# first posts a response under another request id ("wrong_id") or to other Runtime API paths
# ("post_paths", "{rid}" standing for the request id) and reports what it got.
# ECHO_INIT=error posts an init error instead of starting; ECHO_INIT=exit exits during init.
import json, os, sys, time, urllib.error, urllib.request

runtime = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/"
api = runtime + "invocation/"
if os.environ.get("ECHO_INIT") == "exit":
    sys.exit(2)
if os.environ.get("ECHO_INIT") == "error":
    req = urllib.request.Request(runtime + "init/error", data=b"no config", method="POST")
    req.add_header("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
    urllib.request.urlopen(req).read()
    time.sleep(30)
def post(url, data):
    """POSTs data to url; the status and, for an error, the JSON body the API answered."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST")).read()
        return {"status": 202}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read())}

while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        headers = {k.lower(): v for k, v in r.headers.items()}
        ev = json.loads(r.read())
    if ev.get("exit"):
        sys.exit(3)
    time.sleep(ev.get("sleep_s", 0))
    if ev.get("error"):
        body = json.dumps({"errorType": ev["error"], "errorMessage": "asked to"}).encode()
        req = urllib.request.Request(api + rid + "/error", data=body, method="POST")
        urllib.request.urlopen(req).read()
        continue
    wrong = post(api + "not-" + rid + "/response", b'{"wrong": true}') if ev.get("wrong_id") else None
    posted = [post(runtime + path.replace("{rid}", rid), b"{}") for path in ev.get("post_paths", [])]
    out = {"headers": headers, "env": dict(os.environ), "cwd": os.getcwd(), "event": ev,
           "wrong_id": wrong, "posted": posted}
    req = urllib.request.Request(api + rid + "/response", data=json.dumps(out).encode(), method="POST")
    urllib.request.urlopen(req).read()

#!/usr/bin/env python3
# A stand-in packed function for the interpreter's limit tests: it speaks the Lambda Runtime
# API and answers each batch with a BatchResult-shaped payload whose size, fields and fate
# the items choose ("tail" bytes of output, "sleep_s", "no_init_ms", "ignore_budget", "error").
import json, os, time, urllib.request

api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        ev = json.loads(r.read())
    items = ev.get("Items", [])
    bi = ev.get("BatchInput", {})
    budget = ev.get("max_result_bytes", bi.get("max_result_bytes"))
    error = next((it["error"] for it in items if it.get("error")), None)
    if error:
        body = json.dumps({"errorType": error, "errorMessage": "injected"}).encode()
        req = urllib.request.Request(api + rid + "/error", data=body, method="POST")
        req.add_header("Lambda-Runtime-Function-Error-Type", error)
        urllib.request.urlopen(req).read()
        continue
    tasks = []
    for it in items:
        time.sleep(it.get("sleep_s", 0))
        tasks.append({"id": it["id"], "status": "succeeded", "stdout_tail": "x" * it.get("tail", 0)})
    out = {"schema_version": 1, "run_id": bi.get("run_id"), "batch_id": bi.get("batch_id"),
           "instance_id": "fake", "cold_start": False, "received_at": 0, "started_at": 0,
           "ended_at": 0, "vcpus": 1, "parallelism": 1, "memory_mb": 128, "request_id": rid,
           "tasks": tasks}
    if not any(it.get("no_init_ms") for it in items):
        out["init_ms"] = 0
    # Honour the result budget as the runtime does: trim output tails until the result fits.
    if budget is not None and not any(it.get("ignore_budget") for it in items):
        while len(json.dumps(out)) > budget and any(t["stdout_tail"] for t in tasks):
            longest = max(tasks, key=lambda t: len(t["stdout_tail"]))
            longest["stdout_tail"] = longest["stdout_tail"][: len(longest["stdout_tail"]) // 2]
    req = urllib.request.Request(api + rid + "/response", data=json.dumps(out).encode(), method="POST")
    urllib.request.urlopen(req).read()

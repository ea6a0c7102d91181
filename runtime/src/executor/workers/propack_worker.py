# ProPack handler worker for Python (embedded in `bootstrap`, written to the scratch root at first use).
#
# Usage: python3 propack_worker.py TASK_ROOT MODULE.FUNCTION
# The runtime passes a dedicated pipe pair in PROPACK_WORKER_FDS="REQ_FD,RESP_FD":
# one JSON request per line in, one JSON message per line out. stdout/stderr stay the
# handler's; after each task the worker writes the request's marker to both, so the
# runtime can cut each task's output, then sends the result. Messages out:
#   {"type": "ready"} | {"type": "init_error", errorType, errorMessage, stackTrace}
#   {"type": "result", "id", "ok": true, "output": ...}
#   {"type": "result", "id", "ok": false, errorType, errorMessage, stackTrace, "retire"?}
import decimal
import importlib
import json
import os
import sys
import time
import traceback

_WORKER_FILE = os.path.abspath(__file__)
# Without any deadline Lambda's longest timeout is the honest "plenty".
_NO_DEADLINE_REMAINING_MS = 900000


def _fds():
    raw = os.environ.pop("PROPACK_WORKER_FDS", "")
    req, resp = (int(x) for x in raw.split(","))
    # Children of the handler (os.system, fork/exec) must not hold the protocol pipes.
    os.set_inheritable(req, False)
    os.set_inheritable(resp, False)
    return req, resp


REQ_FD, RESP_FD = _fds()


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _send_line(line):
    _write_all(RESP_FD, line.encode("utf-8") + b"\n")


def _send(obj):
    _send_line(json.dumps(obj, separators=(",", ":")))


_IMPORTLIB = os.path.dirname(os.path.abspath(importlib.__file__))


def _user_frames(tb):
    """The traceback without the worker's and importlib's own frames."""

    def user(f):
        path = os.path.abspath(f.filename)
        return not (
            path == _WORKER_FILE
            or f.filename.startswith("<frozen importlib")
            or os.path.dirname(path) == _IMPORTLIB
        )

    return traceback.format_list([f for f in traceback.extract_tb(tb) if user(f)])


def _error(exc, error_type=None, message=None, trace=None):
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc) if message is None else message,
        "stackTrace": _user_frames(exc.__traceback__) if trace is None else trace,
    }


def _load(task_root, handler):
    """The handler function, or the Lambda-style init error."""
    modname, fname = handler.rsplit(".", 1)
    modname = modname.replace("/", ".")
    if modname.split(".")[0] in sys.builtin_module_names:
        return None, {
            "errorType": "Runtime.BuiltInModuleConflict",
            "errorMessage": "Cannot use built-in module %s as a handler module" % modname,
            "stackTrace": [],
        }
    # The worker's own directory must not shadow user modules; the task root comes first.
    here = os.path.dirname(_WORKER_FILE)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, task_root)
    try:
        module = importlib.import_module(modname)
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, (e.text or "").strip())]
        msg = "Syntax error in module '%s': %s" % (modname, e)
        return None, _error(e, "Runtime.UserCodeSyntaxError", msg, trace)
    except ImportError as e:
        msg = "Unable to import module '%s': %s" % (modname, e)
        return None, _error(e, "Runtime.ImportModuleError", msg, [])
    except BaseException as e:  # noqa: BLE001 - any failure while importing user code
        return None, _error(e)
    fn = getattr(module, fname, None)
    if fn is None:
        msg = "Handler '%s' missing on module '%s'" % (fname, modname)
        return None, {"errorType": "Runtime.HandlerNotFound", "errorMessage": msg, "stackTrace": []}
    if not callable(fn):
        msg = "Handler '%s' on module '%s' is not callable" % (fname, modname)
        return None, {"errorType": "Runtime.HandlerNotFound", "errorMessage": msg, "stackTrace": []}
    return fn, None


class LambdaContext:
    """The fields of Lambda's Python context object that handlers use."""

    def __init__(self, req):
        ctx = req.get("context") or {}
        self.aws_request_id = req["id"]
        self.function_name = ctx.get("function_name")
        self.function_version = ctx.get("function_version")
        self.memory_limit_in_mb = ctx.get("memory_limit_in_mb")
        self.invoked_function_arn = ctx.get("invoked_function_arn")
        self.log_group_name = ctx.get("log_group_name")
        self.log_stream_name = ctx.get("log_stream_name")
        self.identity = None
        self.client_context = None
        self._deadline_ms = req.get("deadline_ms")

    def get_remaining_time_in_millis(self):
        if self._deadline_ms is None:
            return _NO_DEADLINE_REMAINING_MS
        return max(int(self._deadline_ms - time.time() * 1000), 0)

    def __repr__(self):
        return "LambdaContext(aws_request_id=%r, function_name=%r)" % (
            self.aws_request_id,
            self.function_name,
        )


def _json_default(o):
    if isinstance(o, decimal.Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)


def _flush_and_mark(marker):
    ok = True
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or replaced stream
            pass
    for fd in (1, 2):
        try:
            _write_all(fd, marker)
        except OSError:
            ok = False
    return ok


def _run(fn, req):
    os.environ["PROPACK_TASK_ID"] = req["id"]
    if req.get("scratch"):
        os.environ["PROPACK_SCRATCH"] = req["scratch"]
    retire = False
    try:
        result = fn(req.get("event"), LambdaContext(req))
        try:
            out = json.dumps(result, allow_nan=False, default=_json_default, separators=(",", ":"))
            line = '{"type":"result","id":%s,"ok":true,"output":%s}' % (json.dumps(req["id"]), out)
            msg = None
        except (TypeError, ValueError, RecursionError) as e:
            msg = {
                "errorType": "Runtime.MarshalError",
                "errorMessage": "Unable to marshal response: %s" % e,
                "stackTrace": [],
            }
    except SystemExit as e:
        msg = {
            "errorType": "Runtime.ExitError",
            "errorMessage": "the handler called sys.exit(%r)" % (e.code,),
            "stackTrace": _user_frames(e.__traceback__),
        }
        retire = True
    except BaseException as e:  # noqa: BLE001 - every handler failure is the task's result
        msg = _error(e)
        if not isinstance(e, Exception):
            retire = True
    if not _flush_and_mark(req["marker"].encode("utf-8")):
        retire = True
    if msg is not None:
        msg.update({"type": "result", "id": req["id"], "ok": False})
        if retire:
            msg["retire"] = True
        _send(msg)
    else:
        _send_line(line)


def main():
    task_root, handler = sys.argv[1], sys.argv[2]
    try:
        # Lines reach the runtime as they are printed, so a crash keeps the output before it.
        sys.stdout.reconfigure(line_buffering=True)
    except Exception:  # noqa: BLE001 - stdout replaced by something without reconfigure
        pass
    fn, err = _load(task_root, handler)
    if err is not None:
        err["type"] = "init_error"
        _send(err)
        return
    _send({"type": "ready"})
    requests = os.fdopen(REQ_FD, "rb")
    while True:
        line = requests.readline()
        if not line:
            return
        _run(fn, json.loads(line))


if __name__ == "__main__":
    main()

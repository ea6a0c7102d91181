// ProPack handler worker for Node.js (embedded in `bootstrap`, written to the scratch root at first use).
//
// Usage: node propack_worker.mjs TASK_ROOT MODULE.FUNCTION
// The runtime passes a dedicated pipe pair in PROPACK_WORKER_FDS="REQ_FD,RESP_FD": one
// JSON request per line in, one JSON message per line out (see propack_worker.py for the
// messages). stdout/stderr stay the handler's; after each task the worker writes the
// request's marker through process.stdout/process.stderr (so it lands after everything
// the handler wrote, even if a write was queued) and only then sends the result.
//
// Lambda's Node semantics: a returned promise settles the task when it settles; a
// callback(err, result) settles it when the event loop is empty (or at once with
// context.callbackWaitsForEmptyEventLoop = false); a handler that does neither returns
// null when the event loop is empty. ES modules and CommonJS both load through import().
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const NO_DEADLINE_REMAINING_MS = 900000;
const [REQ_FD, RESP_FD] = (process.env.PROPACK_WORKER_FDS || '').split(',').map(Number);
delete process.env.PROPACK_WORKER_FDS;
const [taskRoot, handlerName] = process.argv.slice(2);

function writeAll(fd, text) {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

function send(obj) {
  writeAll(RESP_FD, JSON.stringify(obj) + '\n');
}

// Bytes read past the last request line (the runtime sends one request at a time, so normally none).
let carry = Buffer.alloc(0);
function readLine() {
  const parts = [];
  let buf = carry;
  for (;;) {
    const nl = buf.indexOf(10);
    if (nl >= 0) {
      parts.push(buf.subarray(0, nl));
      carry = Buffer.from(buf.subarray(nl + 1));
      return Buffer.concat(parts).toString('utf8');
    }
    parts.push(buf);
    const chunk = Buffer.alloc(65536);
    let n;
    try {
      n = fs.readSync(REQ_FD, chunk, 0, chunk.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') {
        buf = Buffer.alloc(0);
        continue;
      }
      if (e.code === 'EOF') return null;
      throw e;
    }
    if (n === 0) return null;
    buf = chunk.subarray(0, n);
  }
}

const SELF = import.meta.url;
// The stack without the worker's own frames and what Node ran them from.
function userStack(err) {
  if (typeof err.stack !== 'string') return [];
  const lines = err.stack.split('\n');
  const cut = lines.findIndex((l) => l.includes(SELF));
  return cut < 0 ? lines : lines.slice(0, cut);
}

function lambdaError(err, type) {
  if (err instanceof Error) {
    return {
      errorType: type || err.name || 'Error',
      errorMessage: err.message,
      stackTrace: userStack(err),
    };
  }
  let message;
  try {
    message = typeof err === 'string' ? err : JSON.stringify(err);
  } catch {
    message = String(err);
  }
  return { errorType: type || typeof err, errorMessage: String(message), stackTrace: [] };
}

class InitError extends Error {
  constructor(type, message, cause) {
    super(message);
    this.errorType = type;
    this.cause = cause;
  }
}

async function loadHandler() {
  // Lambda's rule: the module is everything up to the first dot after the last slash.
  const slash = handlerName.lastIndexOf('/');
  const dot = handlerName.indexOf('.', slash + 1);
  if (dot <= slash + 1 || dot === handlerName.length - 1) {
    throw new InitError('Runtime.MalformedHandlerName', `Bad handler ${handlerName}`);
  }
  const modPath = handlerName.slice(0, dot);
  const fnPath = handlerName.slice(dot + 1).split('.');
  const base = path.resolve(taskRoot, modPath);
  const file = ['.js', '.mjs', '.cjs'].map((ext) => base + ext).find((f) => fs.existsSync(f));
  if (!file) {
    throw new InitError('Runtime.ImportModuleError', `Error: Cannot find module '${modPath}' in ${taskRoot}`);
  }
  let mod;
  try {
    mod = await import(pathToFileURL(file).href);
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw new InitError('Runtime.UserCodeSyntaxError', `SyntaxError: ${e.message}`, e);
    }
    if (e && (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_MODULE_NOT_FOUND')) {
      throw new InitError('Runtime.ImportModuleError', `Error: ${e.message}`, e);
    }
    throw e;
  }
  const walk = (root) => fnPath.reduce((o, k) => (o == null ? undefined : o[k]), root);
  let fn = walk(mod);
  if (fn === undefined && mod.default !== undefined) fn = walk(mod.default);
  if (fn === undefined) {
    throw new InitError('Runtime.HandlerNotFound', `${handlerName} is undefined or not exported`);
  }
  if (typeof fn !== 'function') {
    throw new InitError('Runtime.HandlerNotFound', `${handlerName} is not a function`);
  }
  return fn;
}

let handler;
// The task in flight: settled once; `onEmptyLoop` runs when the event loop drains.
let current = null;

function makeContext(req, task) {
  const ctx = req.context || {};
  return {
    awsRequestId: req.id,
    functionName: ctx.function_name,
    functionVersion: ctx.function_version,
    memoryLimitInMB: ctx.memory_limit_in_mb,
    invokedFunctionArn: ctx.invoked_function_arn,
    logGroupName: ctx.log_group_name,
    logStreamName: ctx.log_stream_name,
    identity: undefined,
    clientContext: undefined,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis() {
      if (req.deadline_ms == null) return NO_DEADLINE_REMAINING_MS;
      return Math.max(Math.floor(req.deadline_ms - Date.now()), 0);
    },
    done: (err, result) => task.settle(err, result),
    succeed: (result) => task.settle(null, result),
    fail: (err) => task.settle(err ?? new Error('failed'), undefined),
  };
}

function resultLine(id, err, result, errType) {
  if (err != null) {
    return JSON.stringify({ type: 'result', id, ok: false, ...lambdaError(err, errType) });
  }
  let out;
  try {
    out = JSON.stringify(result === undefined ? null : result);
  } catch (e) {
    return JSON.stringify({
      type: 'result',
      id,
      ok: false,
      errorType: 'Runtime.MarshalError',
      errorMessage: `Unable to stringify response body: ${e.message}`,
      stackTrace: [],
    });
  }
  return `{"type":"result","id":${JSON.stringify(id)},"ok":true,"output":${out === undefined ? 'null' : out}}`;
}

function finish(task, line, retire) {
  if (task.done) return;
  task.done = true;
  if (current === task) current = null;
  const reply = (markOk) => {
    const msg = retire || !markOk ? line.replace(/}$/, ',"retire":true}') : line;
    writeAll(RESP_FD, msg + '\n');
    if (retire) process.exit(1);
    setImmediate(next);
  };
  // The callbacks run once the marker is written after everything queued before it.
  try {
    process.stdout.write(task.marker, (e1) => {
      process.stderr.write(task.marker, (e2) => reply(!e1 && !e2));
    });
  } catch {
    reply(false);
  }
}

function runTask(req) {
  process.env.PROPACK_TASK_ID = req.id;
  if (req.scratch) process.env.PROPACK_SCRATCH = req.scratch;
  const task = {
    id: req.id,
    marker: req.marker,
    done: false,
    onEmptyLoop: null,
    settle(err, result) {
      finish(task, resultLine(task.id, err, result), false);
    },
  };
  current = task;
  const context = makeContext(req, task);
  // Neither a promise nor a callback: Lambda answers null once the event loop is empty.
  task.onEmptyLoop = () => task.settle(null, null);
  const callback = (err, result) => {
    if (task.done) return;
    if (context.callbackWaitsForEmptyEventLoop) {
      task.onEmptyLoop = () => task.settle(err, result);
    } else {
      task.settle(err, result);
    }
  };
  let ret;
  try {
    ret = handler(req.event, context, callback);
  } catch (e) {
    task.settle(e);
    return;
  }
  if (ret && typeof ret.then === 'function') {
    ret.then(
      (value) => task.settle(null, value),
      (e) => task.settle(e ?? new Error('handler rejected with ' + String(e)), undefined),
    );
  }
}

function next() {
  const line = readLine();
  if (line === null) process.exit(0);
  runTask(JSON.parse(line));
}

process.on('beforeExit', () => {
  if (current && !current.done && current.onEmptyLoop) {
    const f = current.onEmptyLoop;
    current.onEmptyLoop = null;
    f();
  }
});

// Like Lambda's runtime: an error nobody catches fails the task in flight and ends the worker.
function fatal(err, type) {
  const task = current;
  if (task && !task.done) {
    finish(task, resultLine(task.id, err, undefined, type), true);
  } else {
    process.stderr.write(`uncaught outside any task: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  }
}
process.on('uncaughtException', (e) => fatal(e));
process.on('unhandledRejection', (e) => fatal(e, 'Runtime.UnhandledPromiseRejection'));

try {
  handler = await loadHandler();
} catch (e) {
  if (e instanceof InitError) {
    const trace = e.cause instanceof Error ? userStack(e.cause) : [];
    send({ type: 'init_error', errorType: e.errorType, errorMessage: e.message, stackTrace: trace });
  } else {
    send({ type: 'init_error', ...lambdaError(e) });
  }
  process.exit(0);
}
send({ type: 'ready' });
next();

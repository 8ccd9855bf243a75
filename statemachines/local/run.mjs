#!/usr/bin/env node
// Runs the retraining state machine (statemachines/retrain.asl.json, unchanged) with aws-local-stepfunctions.
//
// Every Task state is routed to the Python process that spawned us: we write a JSON line
//   {"type": "task", "id": N, "state": "...", "resource": "MergeData", "input": {...}}
// to stdout and read the answer as a JSON line on stdin: {"id": N, "output": {...}} or
// {"id": N, "error": "<Python exception class name>", "cause": "<message>"}. The error name becomes the JavaScript
// error's name, which is what the interpreter matches against Retry/Catch ErrorEquals, as Step Functions matches
// Lambda's errorType. Execution events are forwarded as {"type": "event", "event": {...}} lines and the end as
// {"type": "end", "status": "SUCCEEDED" | "FAILED" | "TIMED_OUT", ...}.
//
// Usage: node run.mjs --definition FILE --input JSON [--wait-ms N] [--retry-ms N]
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

// aws-local-stepfunctions 3 declares Node >= 22; on Node 20 the only missing piece it uses is
// Promise.withResolvers (ES2024), which is small enough to provide here.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

const { StateMachine, ExecutionError, ExecutionTimeoutError } = await import('aws-local-stepfunctions');

function parseArgs(argv) {
  const args = { waitMs: null, retryMs: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === '--definition') args.definition = value;
    else if (key === '--input') args.input = JSON.parse(value);
    else if (key === '--wait-ms') args.waitMs = Number(value);
    else if (key === '--retry-ms') args.retryMs = Number(value);
    else throw new Error(`unknown argument ${key}`);
  }
  if (!args.definition || args.input === undefined) throw new Error('--definition and --input are required');
  return args;
}

function send(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

const PLACEHOLDER = /^\$\{([A-Za-z0-9]+)FunctionArn\}$/;

function prepare(definition) {
  // CloudFormation DefinitionSubstitutions placeholders → syntactically valid ARNs (the overrides never call them),
  // and the resource name each Task state maps to.
  const tasks = {};
  const waits = [];
  const retried = [];
  const walk = (states) => {
    for (const [name, state] of Object.entries(states)) {
      if (state.Type === 'Task') {
        const match = PLACEHOLDER.exec(state.Resource);
        if (!match) throw new Error(`Task state ${name}: Resource ${state.Resource} is not a \${...FunctionArn}`);
        tasks[name] = match[1];
        state.Resource = `arn:aws:lambda:us-east-1:000000000000:function:autobert-local-${match[1]}`;
      }
      if (state.Type === 'Wait') waits.push(name);
      if (state.Retry) retried.push(name);
      if (state.Branches) state.Branches.forEach((b) => walk(b.States));
      if (state.Iterator) walk(state.Iterator.States);
      if (state.ItemProcessor) walk(state.ItemProcessor.States);
    }
  };
  walk(definition.States);
  return { tasks, waits, retried };
}

const args = parseArgs(process.argv.slice(2));
const definition = JSON.parse(readFileSync(args.definition, 'utf8'));
const { tasks, waits, retried } = prepare(definition);

const pending = new Map();
let nextId = 1;
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  const reply = JSON.parse(line);
  const waiter = pending.get(reply.id);
  if (!waiter) return;
  pending.delete(reply.id);
  if (reply.error) {
    const error = new Error(reply.cause ?? '');
    error.name = reply.error;
    waiter.reject(error);
  } else {
    waiter.resolve(reply.output ?? null);
  }
});
rl.on('close', () => {
  for (const waiter of pending.values()) {
    const error = new Error('the Python task server went away');
    error.name = 'LocalRunnerError';
    waiter.reject(error);
  }
  pending.clear();
});

const handlers = {};
for (const [stateName, resource] of Object.entries(tasks)) {
  handlers[stateName] = (input) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      send({ type: 'task', id, state: stateName, resource, input });
    });
}
const overrides = { taskResourceLocalHandlers: handlers };
if (args.waitMs !== null) overrides.waitTimeOverrides = Object.fromEntries(waits.map((w) => [w, args.waitMs]));
if (args.retryMs !== null) {
  overrides.retryIntervalOverrides = Object.fromEntries(retried.map((s) => [s, args.retryMs]));
}

const machine = new StateMachine(definition);
const execution = machine.run(args.input, { overrides });
const logging = (async () => {
  for await (const event of execution.eventLogs) send({ type: 'event', event });
})();

let exitCode = 0;
try {
  const output = await execution.result;
  await logging;
  send({ type: 'end', status: 'SUCCEEDED', output });
} catch (error) {
  await logging.catch(() => {});
  if (error instanceof ExecutionTimeoutError) {
    send({ type: 'end', status: 'TIMED_OUT', error: 'States.Timeout', cause: error.message });
  } else if (error instanceof ExecutionError) {
    const cause = error.cause ?? {};
    send({ type: 'end', status: 'FAILED', error: cause.name ?? error.name, cause: cause.message ?? error.message });
  } else {
    send({ type: 'end', status: 'FAILED', error: error.name, cause: error.message });
    exitCode = 1;
  }
}
rl.close();
process.exit(exitCode);

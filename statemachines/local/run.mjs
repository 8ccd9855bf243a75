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
// Wait states last the ASL's Seconds and retries follow its Retry fields, as on AWS; --time-scale S (< 1 in tests)
// makes each Wait last Seconds × S and each retrier pause IntervalSeconds × S (fixed: aws-local-stepfunctions'
// retryIntervalOverrides take no backoff). --print-overrides prints the overrides as JSON and exits.
//
// Usage: node run.mjs --definition FILE --input JSON [--time-scale S] [--print-overrides]
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
  const args = { timeScale: 1, printOverrides: false };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === '--print-overrides') {
      args.printOverrides = true;
      i -= 1;
    } else if (key === '--definition') args.definition = value;
    else if (key === '--input') args.input = JSON.parse(value);
    else if (key === '--time-scale') args.timeScale = Number(value);
    else throw new Error(`unknown argument ${key}`);
  }
  if (!args.definition || args.input === undefined) throw new Error('--definition and --input are required');
  if (!(args.timeScale >= 0)) throw new Error(`--time-scale must be a number >= 0, not ${args.timeScale}`);
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
  const waits = {}; // Wait state -> its Seconds (a Timestamp or *Path wait is left as the ASL says)
  const retried = {}; // state -> each retrier's IntervalSeconds
  const walk = (states) => {
    for (const [name, state] of Object.entries(states)) {
      if (state.Type === 'Task') {
        const match = PLACEHOLDER.exec(state.Resource);
        if (!match) throw new Error(`Task state ${name}: Resource ${state.Resource} is not a \${...FunctionArn}`);
        tasks[name] = match[1];
        state.Resource = `arn:aws:lambda:us-east-1:000000000000:function:autobert-local-${match[1]}`;
      }
      if (state.Type === 'Wait' && typeof state.Seconds === 'number') waits[name] = state.Seconds;
      if (state.Retry) retried[name] = state.Retry.map((r) => r.IntervalSeconds ?? 1); // the ASL's default: 1 s
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
if (args.timeScale !== 1) {
  const scaled = (seconds) => Math.round(seconds * 1000 * args.timeScale);
  overrides.waitTimeOverrides = Object.fromEntries(Object.entries(waits).map(([s, sec]) => [s, scaled(sec)]));
  overrides.retryIntervalOverrides = Object.fromEntries(
    Object.entries(retried).map(([s, intervals]) => [s, intervals.map(scaled)]),
  );
}
if (args.printOverrides) {
  const { waitTimeOverrides = {}, retryIntervalOverrides = {} } = overrides;
  send({ waitTimeOverrides, retryIntervalOverrides });
  process.exit(0);
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

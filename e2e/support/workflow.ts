/**
 * Runs the `run:` steps of one job of a GitHub Actions workflow here, in order, as a runner
 * would: with the GITHUB_* variables, the job's and step's `env:`, what earlier steps wrote to
 * $GITHUB_ENV and $GITHUB_PATH, and the step summary in a file. `uses:` steps (checkout,
 * setup-node) only make sense on GitHub and are skipped; the caller lays out the workspace they
 * would have made.
 *
 * Only the expressions the workflows here use are evaluated: `${{ inputs.X }}`,
 * `${{ secrets.X }}` and `if: github.ref == '<ref>'`. Anything else throws, so that a workflow
 * that grows other expressions fails its test instead of being run wrongly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { run, RunResult } from './processes';

export interface WorkflowInput {
  description?: string;
  type: 'string' | 'boolean' | 'number';
  required?: boolean;
  default?: string | boolean | number;
}

export interface Step {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  env?: Record<string, string>;
  with?: Record<string, unknown>;
}

export interface Job {
  env?: Record<string, string>;
  defaults?: { run?: { shell?: string } };
  steps: Step[];
}

export interface Workflow {
  on: { workflow_call?: { inputs?: Record<string, WorkflowInput>; secrets?: object } };
  jobs: Record<string, Job>;
}

export function readWorkflow(file: string): Workflow {
  return parse(fs.readFileSync(file, 'utf8')) as Workflow;
}

export interface JobRun {
  /** What the steps wrote to $GITHUB_STEP_SUMMARY. */
  summary: string;
  /** Step names (or their `uses:`) and what became of each: ran, skipped (`if:`), or uses. */
  steps: { name: string; outcome: 'ran' | 'skipped' | 'uses'; result?: RunResult }[];
}

export interface RunJobOptions {
  job: string;
  inputs: Record<string, string>;
  secrets: Record<string, string>;
  /** `refs/heads/<branch>`. */
  ref: string;
  /** $GITHUB_WORKSPACE, the working directory of every step. */
  workspace: string;
  /** $RUNNER_TEMP, a fresh directory per job, as on a runner. */
  runnerTemp: string;
  /** More variables for every step (HOME, ...). */
  env?: Record<string, string | undefined>;
}

function evaluate(
  text: string,
  ctx: { inputs: Record<string, string>; secrets: Record<string, string> },
): string {
  return text.replace(/\$\{\{\s*([^}]*?)\s*\}\}/g, (_, expr: string) => {
    const m = /^(inputs|secrets)\.([A-Za-z0-9_-]+)$/.exec(expr);
    if (!m) throw new Error(`unsupported expression \${{ ${expr} }}`);
    return (m[1] === 'inputs' ? ctx.inputs : ctx.secrets)[m[2] as string] ?? '';
  });
}

function condition(expr: string, ref: string): boolean {
  const m = /^github\.ref == '([^']*)'$/.exec(expr.trim());
  if (!m) throw new Error(`unsupported if: ${expr}`);
  return ref === m[1];
}

/** `NAME=value` lines of a $GITHUB_ENV file (the `<<delimiter` form is not used here). */
function readEnvFile(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line === '') continue;
    const i = line.indexOf('=');
    if (i <= 0 || line.includes('<<')) throw new Error(`unsupported $GITHUB_ENV line: ${line}`);
    out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** Run one job's steps; throws, with the step's output, when a step fails. */
export async function runJob(w: Workflow, o: RunJobOptions): Promise<JobRun> {
  const job = w.jobs[o.job];
  if (!job) throw new Error(`no job ${o.job}`);
  if (job.defaults?.run?.shell !== 'bash') throw new Error('the job must run its steps in bash');
  const declared = w.on.workflow_call?.inputs ?? {};
  const inputs: Record<string, string> = {};
  for (const [k, d] of Object.entries(declared)) {
    const v = o.inputs[k] ?? (d.default !== undefined ? String(d.default) : undefined);
    if (v === undefined && d.required) throw new Error(`input ${k} is required`);
    inputs[k] = v ?? '';
  }
  for (const k of Object.keys(o.inputs))
    if (!(k in declared)) throw new Error(`input ${k} is not declared`);
  const ctx = { inputs, secrets: o.secrets };
  const files = {
    GITHUB_STEP_SUMMARY: path.join(o.runnerTemp, '_summary.md'),
    GITHUB_ENV: path.join(o.runnerTemp, '_env'),
    GITHUB_PATH: path.join(o.runnerTemp, '_path'),
  };
  for (const f of Object.values(files)) fs.writeFileSync(f, '');
  const jobEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(job.env ?? {})) jobEnv[k] = evaluate(String(v), ctx);
  const steps: JobRun['steps'] = [];
  for (const [i, s] of job.steps.entries()) {
    const name = s.name ?? s.uses ?? `step ${i + 1}`;
    if (s.uses !== undefined) {
      steps.push({ name, outcome: 'uses' });
      continue;
    }
    if (s.if !== undefined && !condition(s.if, o.ref)) {
      steps.push({ name, outcome: 'skipped' });
      continue;
    }
    if (s.run === undefined) throw new Error(`${name}: neither uses nor run`);
    const stepEnv: Record<string, string> = {};
    for (const [k, v] of Object.entries(s.env ?? {})) stepEnv[k] = evaluate(String(v), ctx);
    const extraPath = fs.readFileSync(files.GITHUB_PATH, 'utf8').split('\n').filter(Boolean);
    const script = path.join(o.runnerTemp, `_step${i}.sh`);
    fs.writeFileSync(script, s.run);
    const env = {
      ...o.env,
      CI: 'true',
      GITHUB_ACTIONS: 'true',
      GITHUB_REF: o.ref,
      GITHUB_WORKSPACE: o.workspace,
      RUNNER_TEMP: o.runnerTemp,
      ...files,
      ...jobEnv,
      ...readEnvFile(files.GITHUB_ENV),
      ...stepEnv,
      // $GITHUB_PATH entries go first, the latest first, as on a runner.
      PATH: [...extraPath.reverse(), path.dirname(process.execPath), process.env.PATH].join(':'),
    };
    // What `shell: bash` runs on a runner.
    const result = await run('bash', ['--noprofile', '--norc', '-eo', 'pipefail', script], {
      cwd: o.workspace,
      env,
    });
    steps.push({ name, outcome: 'ran', result });
    if (result.code !== 0) {
      throw new Error(
        `step "${name}" exited ${result.code}\n--- stdout\n${result.stdout.slice(-4000)}\n--- stderr\n${result.stderr.slice(-4000)}`,
      );
    }
  }
  return { summary: fs.readFileSync(files.GITHUB_STEP_SUMMARY, 'utf8'), steps };
}

import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType } from '@sinclair/typebox/errors';
import type { TSchema } from '@sinclair/typebox';
import { invalidParams } from '../core/errors.js';
import type { Operation, Param } from './operations/index.js';

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();
const checker = (s: TSchema) => {
  let c = compiled.get(s);
  if (!c) { c = TypeCompiler.Compile(s); compiled.set(s, c); }
  return c;
};

/** One readable sentence for the first thing wrong with a parameter. */
function checkParam(p: Param, index: number, value: unknown): void {
  const c = checker(p.schema);
  if (c.Check(value)) return;
  const e = c.Errors(value).First()!;
  const at = (path: string) => `parameter ${index + 1} (${p.name}${path.replaceAll('/', '.')})`;
  if (e.type === ValueErrorType.ObjectAdditionalProperties) {
    // TypeBox points at the unexpected member itself; name it and list what the struct accepts.
    const parent = e.path.slice(0, e.path.lastIndexOf('/'));
    const member = e.path.slice(e.path.lastIndexOf('/') + 1);
    const known = Object.keys((e.schema as { properties?: object }).properties ?? {});
    throw invalidParams(`${at(parent)}: unknown member ${JSON.stringify(member.slice(0, 40))}; known members: ${known.join(', ')}`);
  }
  const where = at(e.path);
  if (e.type === ValueErrorType.StringMaxLength) throw invalidParams(`${where}: longer than ${(e.schema as unknown as { maxLength: number }).maxLength} characters`);
  throw invalidParams(`${where}: ${e.message.toLowerCase()}`);
}

/** XML-RPC: positional parameters, trailing optional ones may be left out. */
export function positionalArgs(op: Operation, values: unknown[]): Record<string, unknown> {
  const required = op.params.filter((p) => !p.optional).length;
  if (values.length < required || values.length > op.params.length) {
    const want = required === op.params.length ? `${required}` : `${required} to ${op.params.length}`;
    throw invalidParams(`${op.name} takes ${want} parameter${op.params.length === 1 ? '' : 's'} (${op.params.map((p) => p.optional ? `[${p.name}]` : p.name).join(', ') || 'none'}), got ${values.length}`);
  }
  const args: Record<string, unknown> = {};
  op.params.forEach((p, i) => { if (i < values.length) { checkParam(p, i, values[i]); args[p.name] = values[i]; } });
  return args;
}

/** REST: parameters by name, gathered from path, query and body. */
export function namedArgs(op: Operation, named: Record<string, unknown>): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  op.params.forEach((p, i) => {
    const v = named[p.name];
    if (v === undefined) {
      if (!p.optional) throw invalidParams(`${p.name} is required`);
      return;
    }
    checkParam(p, i, v);
    args[p.name] = v;
  });
  return args;
}

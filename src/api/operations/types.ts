import type { TSchema } from '@sinclair/typebox';
import type { Services } from '../../services/index.js';
import type { Principal } from '../../services/principal.js';

export interface Param { name: string; schema: TSchema; optional?: boolean }

/**
 * One API operation, described once and served by both transports: XML-RPC takes its params
 * positionally under `name`; REST takes them from the path, query or body of `rest`.
 */
export interface Operation {
  name: string;
  summary: string;
  tag: string;
  admin?: boolean;
  params: Param[];
  result: TSchema;
  rest: {
    method: 'GET' | 'POST' | 'PUT' | 'DELETE'; path: string;
    /** 201 for creations (the scalar result wrapped as `{[wrap]: result}`), 202 for async, 204 for `true`. */
    status?: 200 | 201 | 202 | 204; wrap?: string;
  };
  run(s: Services, p: Principal, a: Record<string, any>): Promise<unknown>;
}

export const op = (o: Operation) => o;

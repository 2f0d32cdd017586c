import { Type } from '@sinclair/typebox';
import { op } from './types.js';
import { Id, ImageId, RequestId, Text, Timestamp, True } from './schemas.js';

export const RequestInfoSchema = Type.Object({
  requestId: Type.String(), method: Type.String(), resourceId: Type.String(),
  status: Type.Union(['queued', 'running', 'succeeded', 'failed', 'cancelled'].map((s) => Type.Literal(s))),
  progress: Type.Integer({ minimum: 0, maximum: 100 }), message: Type.String(), result: Type.Unknown(),
  error: Type.Union([Type.Object({ code: Type.Integer(), message: Type.String() }), Type.Object({})]),
  createdAt: Timestamp, startedAt: Timestamp, finishedAt: Timestamp,
});

export const otherOperations = [
  op({
    name: 'getImageList', summary: 'Images you can use', tag: 'Images', params: [],
    result: Type.Array(Type.Object({ imageId: Type.String(), name: Type.String(), os: Type.String(), sizeGiB: Type.Integer(), kind: Type.String() })),
    rest: { method: 'GET', path: '/v1/images' }, run: (s, p) => s.images.list(p),
  }),
  op({
    name: 'getImageInfo', summary: 'One image', tag: 'Images', params: [{ name: 'imageId', schema: ImageId }],
    result: Type.Object({ imageId: Type.String(), name: Type.String(), os: Type.String(), sizeGiB: Type.Integer(), kind: Type.String(), createdAt: Timestamp, source: Type.String() }),
    rest: { method: 'GET', path: '/v1/images/{imageId}' }, run: (s, p, a) => s.images.info(p, a.imageId),
  }),
  op({
    name: 'getRequestIdInfo', summary: 'An async request: status, progress, result or error', tag: 'Requests', params: [{ name: 'requestId', schema: RequestId }],
    result: RequestInfoSchema, rest: { method: 'GET', path: '/v1/requests/{requestId}' }, run: (s, p, a) => s.requests.get(p, a.requestId),
  }),
  op({
    name: 'getRequestList', summary: 'Recent async requests, newest first (kumo addition)', tag: 'Requests',
    params: [{ name: 'filter', schema: Type.Object({ resourceId: Type.Optional(Id('resource')), status: Type.Optional(Text(16)), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }, { additionalProperties: false }), optional: true }],
    result: Type.Array(RequestInfoSchema), rest: { method: 'GET', path: '/v1/requests' }, run: (s, p, a) => s.requests.list(p, a.filter ?? {}),
  }),
  op({
    name: 'cancelRequest', summary: 'Drop a queued request (a running one only where its method can roll back)', tag: 'Requests',
    params: [{ name: 'requestId', schema: RequestId }], result: True,
    rest: { method: 'POST', path: '/v1/requests/{requestId}/cancel', status: 204 }, run: (s, p, a) => s.requests.cancel(p, a.requestId),
  }),
  op({
    name: 'waitRequest', summary: 'Long-poll: the request once it ends or the timeout passes', tag: 'Requests',
    params: [{ name: 'requestId', schema: RequestId }, { name: 'timeoutSeconds', schema: Type.Integer({ minimum: 0, maximum: 3600 }) }],
    result: RequestInfoSchema, rest: { method: 'GET', path: '/v1/requests/{requestId}/wait' }, run: (s, p, a) => s.requests.wait(p, a.requestId, a.timeoutSeconds),
  }),
  op({
    name: 'getResourceComment', summary: 'The comment on a resource', tag: 'Comments', params: [{ name: 'resourceId', schema: Id('resource') }],
    result: Type.String(), rest: { method: 'GET', path: '/v1/comments/{resourceId}', wrap: 'comment' }, run: (s, p, a) => s.comments.get(p, a.resourceId),
  }),
  op({
    name: 'setResourceComment', summary: 'Set the comment on a resource', tag: 'Comments',
    params: [{ name: 'resourceId', schema: Id('resource') }, { name: 'comment', schema: Text(65536) }], result: True,
    rest: { method: 'PUT', path: '/v1/comments/{resourceId}', status: 204 }, run: (s, p, a) => s.comments.set(p, a.resourceId, a.comment),
  }),
  op({
    name: 'getQuota', summary: 'Your tenant\'s contract limits and what it uses (kumo addition)', tag: 'Tenants', params: [],
    result: Type.Object({ quota: Type.Record(Type.String(), Type.Integer()), usage: Type.Record(Type.String(), Type.Integer()) }),
    rest: { method: 'GET', path: '/v1/quota' }, run: (s, p) => s.tenants.getQuota(p),
  }),
];

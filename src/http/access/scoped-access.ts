import type { FastifyRequest } from 'fastify';
import { mayUseConsumer, type ConsumerActor, type ConsumerRecord } from '../../store/consumers.js';
import type { TopicScope } from '../../topic-scope.js';
import { AUTHENTICATE, presentedToken } from './auth.js';
import { ApiError } from '../errors.js';
import type { Grant } from './token-file.js';
import type { TokenRegistry } from './token-registry.js';

/*
 * Tokens scoped to topics (AUTH_TOKENS_FILE; README, "Access control"). The onRequest hook finds the
 * request's token and keeps its grant on the request; the routes ask the helpers below what it may read,
 * publish and which consumers it may use. Without a tokens file there is no grant, and every helper allows
 * everything (AUTH_TOKEN / AUTH_READ_TOKEN decide alone, in auth.ts).
 */

declare module 'fastify' {
  interface FastifyRequest {
    /** The token's rights; undefined without AUTH_TOKENS_FILE. */
    grant: Grant | undefined;
  }
}

/** An onRequest hook: every route but the public ones needs a token of the file; `admin` routes an admin one. */
export function tokenAccessControl(registry: TokenRegistry) {
  return async (request: FastifyRequest): Promise<void> => {
    const access = request.routeOptions.config?.access ?? 'read';
    if (access === 'public') return;
    const grant = registry.find(presentedToken(request.headers.authorization));
    if (!grant) {
      throw new ApiError('UNAUTHORIZED', 'this route needs Authorization: Bearer <a token of AUTH_TOKENS_FILE>', { authenticate: AUTHENTICATE });
    }
    request.grant = grant;
    // Every line logged for this request names the token (never the token itself).
    request.log = request.log.child({ token: grant.name });
    if (access === 'admin' && !grant.admin) throw new ApiError('ADMIN_REQUIRED', `this route needs an admin token; ${grant.name} is not one`);
  };
}

/** The topics the request may read; undefined: every topic (no tokens file). */
export const readScope = (request: FastifyRequest): TopicScope | undefined => request.grant?.read;

/** The store filter of what the request may read (patterns); undefined: no filter. */
export const readFilter = (request: FastifyRequest): readonly string[] | undefined => request.grant?.read.filter;

const forbidden = (grant: Grant, what: string, topic: string | undefined) => new ApiError('TOPIC_FORBIDDEN', topic === undefined
  ? `token ${grant.name} may not ${what} every topic: name the topics`
  : `token ${grant.name} may not ${what} topic ${JSON.stringify(topic)}`);

/** 403 TOPIC_FORBIDDEN unless the request may read each of `topics` (undefined: every topic). */
export function checkReadable(request: FastifyRequest, topics: Iterable<string> | null | undefined): void {
  const grant = request.grant;
  if (!grant || grant.read.everyTopic) return;
  if (topics === undefined || topics === null) throw forbidden(grant, 'read', undefined);
  const outside = grant.read.firstOutside(topics);
  if (outside !== undefined) throw forbidden(grant, 'read', outside);
}

/** 403 TOPIC_FORBIDDEN naming the first topic of `topics` the request may not publish to. */
export function checkPublishable(request: FastifyRequest, topics: Iterable<string>): void {
  const grant = request.grant;
  if (!grant) return;
  const outside = grant.publish.firstOutside(topics);
  if (outside !== undefined) throw forbidden(grant, 'publish to', outside);
}

/** Who acts on consumers: the token's name and whether it is admin; undefined without a tokens file. */
export const consumerActor = (request: FastifyRequest): ConsumerActor | undefined =>
  request.grant && { token: request.grant.name, admin: request.grant.admin };

/** Whether the request may see the consumer at all: its own, or any for an admin (or without tokens). */
export const mayUse = (request: FastifyRequest, consumer: ConsumerRecord): boolean => mayUseConsumer(consumerActor(request), consumer.owner);

/**
 * 403 CONSUMER_FORBIDDEN for another token's consumer; 403 TOPIC_FORBIDDEN when it reads a topic the token
 * may no longer read (its rights were narrowed after it created the consumer).
 */
export function checkConsumerUse(request: FastifyRequest, consumer: ConsumerRecord): void {
  if (!mayUse(request, consumer)) throw new ApiError('CONSUMER_FORBIDDEN', `consumer ${consumer.name} belongs to another token`);
  checkReadable(request, consumer.topics);
}

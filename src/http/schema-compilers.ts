import { AjvCompiler } from '@fastify/ajv-compiler';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import type { FastifyServerOptions } from 'fastify';

/*
 * Fastify's own schema compilers (ajv for requests, fast-json-stringify for responses), made once per
 * process instead of once per app. Compiling every route's schemas costs an app ~130 ms of CPU; ajv keeps
 * what it compiled per schema object, and the serializers are kept here the same way, so an app built
 * again in the same process (the test suite builds hundreds) reuses them. The route schemas are module
 * constants (http/schemas/), and a compiled validator or serializer depends on nothing else but the
 * options, which are part of the cache key as they are of ajv-compiler's own pool.
 */

const buildSerializerCompiler = SerializerSelector();
type SerializerCompiler = ReturnType<typeof buildSerializerCompiler>;
type Serializer = ReturnType<SerializerCompiler>;
const serializers = new Map<string, WeakMap<object, Serializer>>();

function buildSerializer(externalSchemas?: unknown, options?: Parameters<typeof buildSerializerCompiler>[1]): SerializerCompiler {
  const compile = buildSerializerCompiler(externalSchemas, options);
  const key = JSON.stringify([externalSchemas, options]);
  const compiled = serializers.get(key) ?? new WeakMap<object, Serializer>();
  serializers.set(key, compiled);
  return (route) => {
    const schema = route.schema;
    if (typeof schema !== 'object' || schema === null) return compile(route);
    let serializer = compiled.get(schema);
    if (!serializer) {
      serializer = compile(route);
      compiled.set(schema, serializer);
    }
    return serializer;
  };
}

export const SHARED_SCHEMA_COMPILERS: NonNullable<FastifyServerOptions['schemaController']> = {
  compilersFactory: { buildValidator: AjvCompiler(), buildSerializer },
};

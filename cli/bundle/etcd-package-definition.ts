// Used only in the vcctl bundle (hack/build-cli.ts): etcd3 builds its gRPC clients from
// @grpc/proto-loader's loadSync of rpc.proto, which parses the .proto text and encodes descriptor
// protos of every message at each start (~a fifth of a fresh `vcctl apply`). The bundle gives it
// this instead: the protobufjs JSON of the same files and the method table, both taken from
// proto-loader's own result at build time, turned into the service part of a PackageDefinition
// with proto-loader's serializers (same conversion options). Message-type entries, which only
// gRPC reflection uses, are left out. test/cli/bundle.test.ts checks that both agree.

import protobuf from 'protobufjs';

/** What grpc-js needs of one method; the type names are fully qualified (etcdserverpb.RangeRequest). */
export interface MethodSpec {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  originalName: string;
  requestType: string;
  responseType: string;
}

/** By service (etcdserverpb.KV), then method (Range). */
export type ServiceSpecs = Record<string, Record<string, MethodSpec>>;

type Conversion = protobuf.IConversionOptions;

function serializer(type: protobuf.Type) {
  return function serialize(arg: unknown): Buffer {
    if (Array.isArray(arg)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    return type.encode(type.fromObject(arg as Record<string, unknown>)).finish() as Buffer;
  };
}

function deserializer(type: protobuf.Type, options: Conversion) {
  return function deserialize(buf: Buffer): unknown {
    return type.toObject(type.decode(buf), options);
  };
}

/** The services of a PackageDefinition (grpc.loadPackageDefinition's input). */
export function etcdPackageDefinition(json: protobuf.INamespace, services: ServiceSpecs, options: Conversion) {
  const root = protobuf.Root.fromJSON(json);
  const def: Record<string, Record<string, unknown>> = {};
  for (const [service, methods] of Object.entries(services)) {
    const out: Record<string, unknown> = {};
    for (const [name, m] of Object.entries(methods)) {
      const req = root.lookupType(m.requestType);
      const res = root.lookupType(m.responseType);
      out[name] = {
        path: m.path,
        requestStream: m.requestStream,
        responseStream: m.responseStream,
        requestSerialize: serializer(req),
        requestDeserialize: deserializer(req, options),
        responseSerialize: serializer(res),
        responseDeserialize: deserializer(res, options),
        originalName: m.originalName,
        options: {},
      };
    }
    def[service] = out;
  }
  return def;
}

/**
 * Build time: the JSON and method table of a .proto file, from proto-loader's own loading with
 * the options etcd3 uses, so names and stream flags are proto-loader's.
 */
export async function etcdProtoSpecs(protoFile: string, options: Record<string, unknown>): Promise<{ json: protobuf.INamespace; services: ServiceSpecs }> {
  const loader = await import('@grpc/proto-loader');
  // proto-loader's own parsing step (the same package as loadSync below).
  const util = await import('@grpc/proto-loader/build/src/util.js');
  const root = util.loadProtosWithOptionsSync(protoFile, options);
  const def = loader.loadSync(protoFile, options);
  const services: ServiceSpecs = {};
  for (const [name, entry] of Object.entries(def)) {
    if ('format' in entry) continue; // message and enum types
    const methods: Record<string, MethodSpec> = {};
    for (const [method, m] of Object.entries(entry as Record<string, { path: string; requestStream: boolean; responseStream: boolean; originalName?: string }>)) {
      const svc = root.lookupService(name);
      const rpc = svc.methods[method];
      rpc.resolve();
      methods[method] = {
        path: m.path,
        requestStream: m.requestStream,
        responseStream: m.responseStream,
        originalName: m.originalName ?? method,
        requestType: rpc.resolvedRequestType!.fullName.replace(/^\./, ''),
        responseType: rpc.resolvedResponseType!.fullName.replace(/^\./, ''),
      };
    }
    services[name] = methods;
  }
  return { json: root.toJSON(), services };
}
